"""Running a tool's `main`: a user's error is one line on stderr and exit code 2, never a traceback.

`--debug` (or the environment variable WORKBENCH_DEBUG=1) shows the traceback of a user error too; errors in our
own code always show theirs.
"""
import argparse
import os
import sys
from collections.abc import Callable

from workbench.errors import UserError

USER_ERROR_EXIT_CODE = 2  # as argparse uses for a bad command line


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> object:
    """Parses `argv` (default: the command line) with `parser` plus `--debug`, and calls `main` with the result."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UserError as error:
        if args.debug or os.environ.get("WORKBENCH_DEBUG") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
