"""ONNX export with dynamic image sizes (and batch for backbones and classifiers), opset 17 or more.

The exporter is torch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`), the one torchvision's own
ONNX tests of Faster / Mask R-CNN use. With torch 2.14.1 the default torch.export-based exporter (`dynamo=True`)
stops on the detectors' data-dependent shapes (GuardOnDataDependentSymNode in torchvision's `batched_nms`), while
the traced exporter records torchvision's ONNX paths (`torchvision._is_tracing()`: image resizing, level merging of
the RoI pooling, mask pasting); for backbones both work, the traced one in a tenth of the time (0.4 s against 6 s for
a features-only resnet18), so one exporter serves every kind. Detectors take one image [3, H, W], as torchvision's
ONNX detectors do.
"""
import warnings
from pathlib import Path

import torch
from torch import nn

from workbench.errors import UserError

from .dependencies import require
from .metadata import interface, write_onnx_metadata
from .subjects import ExportSubject
from .torchscript import JIT_DEPRECATION

MIN_OPSET = 17
MAX_OPSET = 20  # the highest the TorchScript-based exporter writes (torch.onnx._constants)
DEFAULT_OPSET = 17


def dynamic_axes(specs: list[dict]) -> dict[str, dict[int, str]]:
    """{name: {axis: axis name}} for the axes that `interface` names by a string."""
    return {spec["name"]: {axis: dim for axis, dim in enumerate(spec["shape"]) if isinstance(dim, str)}
            for spec in specs}


def check_opset(opset: int) -> int:
    """`opset`, when the exporter writes it (17..20).

    Raises:
        UserError: otherwise.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UserError(f"--opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    return opset


def export_onnx(model: nn.Module, subject: ExportSubject, path: str | Path, example: torch.Tensor, metadata: dict,
                opset: int = DEFAULT_OPSET) -> Path:
    """Traces `model` (an exportable copy, see `workbench.export.exportable`) on `example` and writes it to `path`
    with `metadata` (see `workbench.export.metadata`).

    Args:
        example: an input as the exported model takes it: a batch [N, 3, H, W] (backbones, classifiers) or one
            image [3, H, W] (detectors).

    Raises:
        UserError: onnx is not installed, or `opset` is not supported.
    """
    onnx = require("onnx")
    check_opset(opset)
    inputs, outputs = interface(subject)
    args = ([example],) if subject.is_detector else (example,)
    with torch.no_grad(), warnings.catch_warnings():
        # tracing notes (constants recorded for Python values, torchvision's tensor copies) are expected here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=JIT_DEPRECATION, category=FutureWarning)  # torchvision's ONNX paths
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                          input_names=[spec["name"] for spec in inputs],
                          output_names=[spec["name"] for spec in outputs],
                          dynamic_axes=dynamic_axes(inputs + outputs), do_constant_folding=True)
    onnx.checker.check_model(str(path))
    write_onnx_metadata(path, metadata)
    return Path(path)
