"""Runs a training tool as a torchrun worker and prints `rank R exited with N` once every exit handler has run (run
by test_faults.py; it is no test itself). torchrun does not report its workers' exit codes when it is signalled
itself; a worker that is killed, or stuck on its way out, prints nothing.

Usage: python exit_status.py TOOL [the tool's arguments ...]
"""
import atexit
import os
import runpy
import sys


def main() -> None:
    status = [1]  # as Python's own for an uncaught exception
    atexit.register(lambda: print(f"rank {os.environ['RANK']} exited with {status[0]}", flush=True))  # runs last
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        status[0] = 0
    except SystemExit as error:
        status[0] = 0 if error.code is None else error.code if isinstance(error.code, int) else 1
        raise


if __name__ == "__main__":
    main()
