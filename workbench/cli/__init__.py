"""The command lines' side of the library: running a tool's `main`, and (in the sub-modules) turning a tool's
parsed arguments into calls of the library, which takes configs and objects and raises exceptions.

`run`: a user's error is one line on stderr and exit code 2, never a traceback; a `TrainingStopped` is one line and
exit code 1. A user's error is a `workbench.errors.UserError`, or a `backbones.CheckpointError` (a weights file that
cannot be read or does not fit the model). `--debug` (or the environment variable WORKBENCH_DEBUG=1) shows the
traceback of a user error too; errors in our own code always show theirs.
"""
import argparse
import os
import sys
from collections.abc import Callable

from backbones import CheckpointError
from workbench.errors import TrainingStopped, UserError

USER_ERROR_EXIT_CODE = 2  # as argparse uses for a bad command line
USER_ERRORS = (UserError, CheckpointError)


def message_of(error: Exception) -> str:
    """The error's message; for one re-raised from a DataLoader worker (whose message is the worker's traceback),
    the original message, which is that traceback's last line after the exception's name."""
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        return text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> object:
    """Parses `argv` (default: the command line) with `parser` plus `--debug`, and calls `main` with the result;
    turns the errors above into their message and exit code."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")
    args = parser.parse_args(argv)
    try:
        return main(args)
    except USER_ERRORS as error:
        if args.debug or os.environ.get("WORKBENCH_DEBUG") == "1":
            raise
        print(f"error: {message_of(error)}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except TrainingStopped as error:
        sys.exit(f"training stopped: {error}")
