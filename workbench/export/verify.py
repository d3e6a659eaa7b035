"""Parity of an exported file with the PyTorch model it came from, on the same inputs.

Every output is compared by its worst absolute difference, which may be at most `tolerance * max(1, max |reference|)`
(the tolerance relative to the output's largest magnitude, absolute below 1): by default 1e-4 for backbones and
classifiers (measured through ONNX: 2.4e-6 of the largest value of a random resnet50's maps and logits; through
TorchScript: 0) and 1e-3 for detectors, whose box decoding amplifies float rounding. Mask probabilities are allowed
`MASK_TOLERANCE_FACTOR` (10) times the tolerance: they are a sigmoid of logits that reach 100 and more in untrained
nets, where float rounding of the logits moves probabilities near 0.5 by about 1e-3 (measured on a random R50-FPN
Mask R-CNN at 800 px, 2 images: ONNX against PyTorch boxes 0.0076 px, scores 1.8e-4, masks 2.5e-3; our own fast CPU
path against the exact one masks 1.3e-3).

Detections are compared per image: the same number, paired by label and nearest box (ties in score may order them
differently), then boxes, scores and masks. Masks are pasted into the image along their box, whose corners are
rounded to pixels, so a box moved by float rounding across a pixel boundary resamples its whole mask; the exported
masks are therefore compared with the reference's 28x28 mask probabilities pasted at the exported boxes, which
separates the masks' error from the boxes' (checked on their own).
"""
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import paste_masks_in_image

from .subjects import DETECTOR_KINDS

DEFAULT_TOLERANCES = {"backbone": 1e-4, "classifier": 1e-4, "faster_rcnn": 1e-3, "mask_rcnn": 1e-3}
DETECTION_FIELDS = ("boxes", "scores", "masks")
MASK_TOLERANCE_FACTOR = 10


@dataclass
class Comparison:
    """The worst absolute difference of one output over all inputs, against what the tolerance allows."""

    name: str
    tolerance: float
    factor: float = 1.0  # of the tolerance, for this output
    max_diff: float = 0.0
    reference_max: float = 0.0

    @property
    def allowed(self) -> float:
        return self.factor * self.tolerance * max(1.0, self.reference_max)

    @property
    def ok(self) -> bool:
        return self.max_diff <= self.allowed

    def add(self, reference: Tensor, exported: Tensor) -> None:
        """Takes the differences of one input's output into account (same shapes)."""
        if reference.numel():
            reference, exported = reference.double(), exported.double()
            self.max_diff = max(self.max_diff, (reference - exported).abs().max().item())
            self.reference_max = max(self.reference_max, reference.abs().max().item())

    def line(self) -> str:
        factor = f"{self.factor:g} x " if self.factor != 1 else ""
        return (f"{self.name}: max |diff| {self.max_diff:.3g}, allowed {self.allowed:.3g} ({factor}tolerance "
                f"{self.tolerance:g} x max(1, max |ref| {self.reference_max:.3g})) {'ok' if self.ok else 'FAILED'}")


@dataclass
class Verification:
    """The comparisons of every output, and the problems that are no difference of values (shapes, counts)."""

    comparisons: dict[str, Comparison] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.comparisons.values())

    def compare(self, name: str, reference: Tensor, exported: Tensor, tolerance: float, where: str,
                factor: float = 1.0) -> None:
        """Adds one output of one input; a shape mismatch is a problem."""
        if reference.shape != exported.shape:
            self.problems.append(f"{name} of {where}: shape {list(exported.shape)} exported, "
                                 f"{list(reference.shape)} in PyTorch")
            return
        self.comparisons.setdefault(name, Comparison(name, tolerance, factor)).add(reference, exported)

    def lines(self) -> list[str]:
        return [c.line() for c in self.comparisons.values()] + self.problems + self.notes

    def failures(self) -> list[str]:
        return [c.line() for c in self.comparisons.values() if not c.ok] + self.problems


def detections_with_mask_probabilities(model: nn.Module, image: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
    """The eager detector's detections of one image, and (Mask R-CNN) its mask probabilities [N, 1, 28, 28] before
    they are pasted into the image (caught from the RoI heads)."""
    caught = []
    hook = model.roi_heads.register_forward_hook(
        lambda module, args, output: caught.extend(d["masks"].clone() for d in output[0] if "masks" in d))
    try:
        detections = model([image])[0]
    finally:
        hook.remove()
    return detections, (caught[0] if caught else None)


def match_detections(reference: dict[str, Tensor], exported: dict[str, Tensor]) -> list[int] | str:
    """For each reference detection, the index of its exported counterpart: same label, nearest box (greedy, in
    the reference's order of scores); or the reason there is none."""
    count, exported_count = len(reference["boxes"]), len(exported["boxes"])
    if count != exported_count:
        return f"{exported_count} detections exported, {count} in PyTorch"
    distance = (reference["boxes"][:, None].double() - exported["boxes"][None].double()).abs().amax(-1)
    distance[reference["labels"][:, None] != exported["labels"][None]] = float("inf")
    pairs = []
    for i in range(count):
        j = int(distance[i].argmin())
        if distance[i, j] == float("inf"):
            return (f"PyTorch's detection {i} (label {int(reference['labels'][i])}, score "
                    f"{float(reference['scores'][i]):.4f}) has no exported detection of that label left")
        pairs.append(j)
        distance[:, j] = float("inf")
    return pairs


def compare_detections(verification: Verification, reference: dict[str, Tensor], mask_probabilities: Tensor | None,
                       exported: dict[str, Tensor], image: Tensor, tolerance: float, where: str) -> None:
    """Adds one image's detections: count, labels, then boxes, scores and masks of the paired detections."""
    pairs = match_detections(reference, exported)
    if isinstance(pairs, str):
        verification.problems.append(f"detections of {where}: {pairs}")
        return
    order = torch.tensor(pairs, dtype=torch.long)
    for name in DETECTION_FIELDS[:2]:
        verification.compare(name, reference[name], exported[name][order], tolerance, where)
    if mask_probabilities is not None:
        if "masks" not in exported:
            verification.problems.append(f"{where}: the exported detector returns no masks")
            return
        masks = paste_masks_in_image(mask_probabilities, exported["boxes"][order], image.shape[-2:])
        verification.compare("masks", masks, exported["masks"][order], tolerance, where, MASK_TOLERANCE_FACTOR)


def verify_outputs(model: nn.Module, exported: Callable, inputs: list[Tensor], kind: str, output_names: list[str],
                   tolerance: float | None = None) -> Verification:
    """Runs the eager `model` and the `exported` one on every input and compares their outputs.

    Args:
        model: the eager model that was exported (eval mode, CPU).
        exported: the exported file as a callable with the eager convention (`load_onnx`, `load_torchscript`).
        inputs: batches [N, 3, H, W] (backbones, classifiers) or images [3, H, W] (detectors).
        kind: "backbone", "classifier", "faster_rcnn" or "mask_rcnn".
        output_names: the names of a backbone's maps (for the report).
        tolerance: see the module docstring; None for the kind's default (`DEFAULT_TOLERANCES`).
    """
    tolerance = DEFAULT_TOLERANCES[kind] if tolerance is None else tolerance
    verification = Verification()
    total = 0
    with torch.no_grad():
        for index, x in enumerate(inputs):
            where = f"input {index} ({'x'.join(map(str, x.shape))})"
            if kind in DETECTOR_KINDS:
                reference, probabilities = detections_with_mask_probabilities(model, x)
                compare_detections(verification, reference, probabilities, exported([x])[0], x, tolerance, where)
                total += len(reference["boxes"])
                continue
            reference, got = model(x), exported(x)
            reference, got = (reference, got) if kind == "backbone" else ([reference], [got])
            if len(reference) != len(got):
                verification.problems.append(f"{where}: {len(got)} outputs exported, {len(reference)} in PyTorch")
                continue
            for name, ref, out in zip(output_names, reference, got):
                verification.compare(name, ref, out, tolerance, where)
    if kind in DETECTOR_KINDS:
        verification.notes.append(f"detections: {total} in {len(inputs)} images, paired by label and box")
        if total == 0:
            verification.notes.append("no detections on these images: only their number was compared; give --images "
                                      "with objects, or lower model.options.box_score_thresh")
    return verification
