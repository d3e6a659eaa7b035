"""Reading a checkpoint file: the state dict it holds, whatever wraps it, as CPU tensors, and the conventions it
states; safetensors, torch's zip and legacy formats and pickles, without running code from the file."""
import argparse
import logging
import os
import re
import zipfile
from collections.abc import Mapping

import numpy as np
import safetensors.torch
import torch

from ..normalization import in_unit_range
from ..safe_pickle import load_pickle
from .errors import CheckpointError, CheckpointNotFoundError

logger = logging.getLogger(__name__)

# Mappings that hold the state dict, in order of preference: the EMA weights only when there are no plain ones.
WRAPPER_KEYS = ("state_dict", "model", "blobs", "state_dict_ema", "model_ema")
# How torch's weights_only loader and `load_pickle` name a global they refuse to run.
REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL [\w.]+|refused to load global [\w.]+")


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in `path`, whatever wraps it (see `read_weights`)."""
    return read_weights(path)[0]


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Reads the state dict stored in `path`, whatever wraps it, and the conventions the file states.

    `.safetensors` files are read by safetensors, zip archives (and files not named `.pkl`/`.pickle`, such as torch's
    legacy non-zip format) by `torch.load(weights_only=True)`, other `.pkl`/`.pickle` files by `load_pickle` (numpy
    arrays become tensors).
    The state dict is taken from `state_dict`, `model` or `blobs` (Detectron), else from `state_dict_ema` or
    `model_ema`; keys ending in `_momentum` (Detectron's optimizer state) and entries that are not arrays are dropped.

    Args:
        path: The checkpoint file.

    Returns:
        Key to CPU tensor, in the file's own names; and the file's `conventions` entry (our training checkpoints
        save the model's, see `backbones.conventions`), empty when it has none.

    Raises:
        CheckpointNotFoundError: `path` does not exist (a FileNotFoundError).
        CheckpointError: The file is empty, cannot be read or holds no tensors; the message names the path and the
            reason (a ValueError).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes)")
    try:
        content = _read_file(path)
    except Exception as error:
        raise CheckpointError(_unreadable(path, error)) from error
    state_dict = _unwrap(content)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"cannot read checkpoint {path}: it holds a {type(state_dict).__name__}, "
                              "not a state dict")
    stated = content.get("conventions") if isinstance(content, Mapping) else None
    return _as_tensors(state_dict, path), in_unit_range(stated) if isinstance(stated, Mapping) else {}


def _unreadable(path: str, error: Exception) -> str:
    """Why `path` cannot be read, in one line: a refused global (the file could run code when loaded), else the
    first sentence of the reader's message."""
    message = str(error)
    if refused := REFUSED_GLOBAL.search(message):
        return (f"cannot read checkpoint {path}: refused: it holds objects other than tensors and plain containers, "
                f"which could run code when loaded ({refused.group(0)})")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reason = lines[0].split(". ")[0] if lines else type(error).__name__
    return f"cannot read checkpoint {path} (truncated, or not a checkpoint): {reason}"


def _read_file(path: str) -> object:
    if path.endswith(".safetensors"):
        return safetensors.torch.load_file(path, device="cpu")
    if path.endswith((".pkl", ".pickle")) and not zipfile.is_zipfile(path):
        return load_pickle(path)
    # Training scripts (torchvision references, timm) save their argparse arguments next to the weights.
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _unwrap(content: object) -> object:
    while isinstance(content, Mapping):
        key = next((k for k in WRAPPER_KEYS if isinstance(content.get(k), Mapping)), None)
        if key is None:
            return content
        content = content[key]
    return content


def _as_tensors(state_dict: Mapping, path: str) -> dict[str, torch.Tensor]:
    tensors, ignored = {}, []
    for key, value in state_dict.items():
        if key.endswith("_momentum"):
            continue
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biufc":
            value = torch.from_numpy(np.array(value))
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            ignored.append(key)
    if ignored:
        logger.warning("%s: ignoring %d entries that are not tensors: %s", path, len(ignored), ", ".join(ignored[:5]))
    if not tensors:
        raise CheckpointError(f"cannot read checkpoint {path}: it holds no tensors")
    return tensors
