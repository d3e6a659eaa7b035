"""The errors of reading and loading weights: every one a `CheckpointError`, a ValueError that names the file."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not fit the model it is loaded into; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys, shapes or dtypes do not match the model it is loaded into."""
