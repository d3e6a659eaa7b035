"""Pretrained weights from every common format: `reading` reads a checkpoint file, `formats` detects its format and
renames it to torchvision's names (one module per format family), `loading` loads it into a model and says what does
not match; `errors` holds the errors all three raise."""
from .errors import CheckpointError, CheckpointMismatchError, CheckpointNotFoundError
from .formats import convert_state_dict, detect_format, strip_shared_prefixes
from .loading import load_weights
from .reading import read_checkpoint, read_weights

__all__ = [
    "CheckpointError", "CheckpointMismatchError", "CheckpointNotFoundError", "convert_state_dict", "detect_format",
    "load_weights", "read_checkpoint", "read_weights", "strip_shared_prefixes",
]
