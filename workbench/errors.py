"""Errors in what a user gave (a file, a key, a value, a path), as opposed to errors in our code.

A command line shows a `UserError` as one message and exits with code 2 (see `workbench.cli`); our own bugs keep
their traceback. `UserError` is a ValueError, so code that catches ValueError still catches it.
"""


class UserError(ValueError):
    """Bad input: the message names the file, id or key, says what was found and what was expected."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class TrainingStopped(RuntimeError):
    """Training cannot go on (a non-finite loss, a collective operation broken by another process); the message says
    why. A command line shows it as one message and exits with code 1."""
