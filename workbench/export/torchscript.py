"""TorchScript export (`torch.jit.script`: the detectors' data-dependent post-processing compiles, as in torchvision)
and loading an exported file back with the calling convention of the eager model."""
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .metadata import TORCHSCRIPT_EXTRA_FILE, read_torchscript_metadata
from .subjects import DETECTOR_KINDS

# torch 2.14 marks torch.jit.script / save / load deprecated (in favour of torch.export, which cannot export the
# detectors, see `workbench.export.onnx_export`); TorchScript remains the format torchvision's detectors script to.
JIT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


def export_torchscript(model: nn.Module, path: str | Path, metadata: dict) -> Path:
    """Scripts `model` (an exportable copy, see `workbench.export.exportable`) and saves it at `path` with
    `metadata` as the archive's extra file "workbench.json"."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_DEPRECATION, category=FutureWarning)
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(path), _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(metadata)})
    return Path(path)


def load_torchscript(path: str | Path) -> Callable:
    """The TorchScript file at `path` as a callable with the eager model's convention: a detector takes a list of
    images and returns its list of detections (scripted detectors return `(losses, detections)`), a backbone a list
    of maps, a classifier logits."""
    metadata = read_torchscript_metadata(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_DEPRECATION, category=FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()
    if metadata["kind"] not in DETECTOR_KINDS:
        return module

    def detect(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="RCNN always returns a", category=UserWarning)
            return module(images)[1]
    return detect
