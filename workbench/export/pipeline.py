"""Export, then verify: the file is written, run on the same inputs as the PyTorch model and compared, and only a
file that passes is put at the output path.

The command line is `tools/export.py`.
"""
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from backbones.old_paths import moved_names
from workbench.errors import UserError

from .dependencies import require_onnx_extra
from .exportable import exportable_copy
from .metadata import METADATA_KEY, build_metadata, interface
from .onnx_export import DEFAULT_OPSET, check_opset, export_onnx
from .onnx_runtime import load_onnx
from .sample_images import describe, file_inputs, random_inputs
from .subjects import ExportSubject
from .torchscript import export_torchscript, load_torchscript
from .verify import Verification, verify_outputs

FORMATS = ("onnx", "torchscript")


@dataclass
class ExportResult:
    """What an export wrote and how it compared with the PyTorch model."""

    path: Path
    metadata: dict
    verification: Verification


def unverified_path(output: Path) -> Path:
    """Where the file is written until it passes verification (and left, for inspection, when it does not)."""
    return output.with_name(f"{output.stem}.unverified{output.suffix}")


def export_and_verify(subject: ExportSubject, output: str | Path, fmt: str = "onnx", *, opset: int = DEFAULT_OPSET,
                      tolerance: float | None = None, images: list[str | Path] | None = None, seed: int = 0,
                      log: Callable[[str], None] = print) -> ExportResult:
    """Exports `subject` as `fmt` to `output`, after checking that the file computes what the PyTorch model does.

    The model exported is a copy without our eager CPU speed-ups (`workbench.export.exportable`); the PyTorch outputs
    compared are that copy's (for detectors, torchvision's exact path).

    Args:
        subject: what to export (`subject_for(model)`, or from a command line).
        output: the file to write (.onnx, or .pt for TorchScript by convention).
        fmt: "onnx" or "torchscript".
        opset: ONNX opset, 17..20.
        tolerance: the largest difference allowed, relative to each output's largest magnitude (absolute below 1);
            None for the kind's default (1e-4 backbones and classifiers, 1e-3 detectors; mask probabilities are
            allowed 10 times the tolerance; see `workbench.export.verify`).
        images: image files to verify on; default: seeded random images of two sizes.
        seed: seed of the random images.
        log: where the report goes.

    Returns:
        The path, the metadata written into the file and the comparisons.

    Raises:
        UserError: an unknown format or opset, onnx/onnxruntime not installed, an unreadable image, or an exported
            output that differs from the PyTorch model's by more than the tolerance (the file is then left at
            `<stem>.unverified<suffix>` and `output` is not touched).
    """
    if fmt not in FORMATS:
        raise UserError(f"format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx_extra()
        check_opset(opset)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    inputs = file_inputs(subject, images) if images else random_inputs(subject, seed)
    model = exportable_copy(subject.model, fmt)
    written = unverified_path(output)
    if fmt == "onnx":
        metadata = build_metadata(subject, fmt, opset=opset)
        export_onnx(model, subject, written, inputs[0], metadata, opset)
        exported = load_onnx(written, threads=torch.get_num_threads())
    else:
        metadata = build_metadata(subject, fmt)
        export_torchscript(model, written, metadata)
        exported = load_torchscript(written)
    names = [spec["name"] for spec in interface(subject)[1]]
    verification = verify_outputs(model, exported, inputs, subject.kind, names, tolerance)
    log(f"{fmt} {subject.kind} against PyTorch on {describe(inputs, bool(images))}:")
    for line in verification.lines():
        log(f"  {line}")
    if not verification.ok:
        raise UserError(f"the exported {subject.kind} differs from the PyTorch model: "
                        f"{'; '.join(verification.failures())}; the unverified file is {written}")
    os.replace(written, output)
    log(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB; metadata key {METADATA_KEY!r}: kind "
        f"{metadata['kind']}, inputs {', '.join(spec['name'] for spec in metadata['inputs'])})")
    return ExportResult(output, metadata, verification)


# The command line's entry moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"export_from_args": ("workbench.cli.export", "export")})
