"""Inference time of our Faster / Mask R-CNN R50-FPN against torchvision's own model on the same checkpoint and
images; the detections must be identical (torchvision's layout loads as it is, see `heads.weights`).

The checkpoint is torchvision's architecture with random weights and BatchNorm statistics (no download), its
RPN and box predictors scaled down as a trained checkpoint's are (`realistic_predictors`): the RPN proposes 1000
distinct boxes per image and, at torchvision's score threshold 0.05, each image keeps `detections` boxes and masks
of spread-out scores, so that the RoI heads, the mask head and mask pasting do the work a busy image gives them.

Ours runs with its CPU inference speed-ups (`heads.set_fast_inference`, the default); "ours, exact" without them.
"peak MiB" is the memory of one call above what was in use before it, once every model has run and with the folded
and packed weights dropped first, so that what ours builds and keeps counts (`timing.peak_memory_after_warmup`).
"""
import copy
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision

import backbones
import heads
from backbones.old_paths import moved_names
from workbench.benchmarks.timing import (
    alternate,
    machine_line,
    max_abs_difference,
    medians,
    peak_memory_after_warmup,
    table,
    write_report,
)

TORCHVISION_BUILDERS = {"mask_rcnn": "maskrcnn_resnet50_fpn", "faster_rcnn": "fasterrcnn_resnet50_fpn"}


@dataclass
class InferenceSettings:
    """What the `detector-inference` case times.

    Attributes:
        kinds: detectors (of TORCHVISION_BUILDERS).
        images: images per call.
        height: image height (the detector's min_size).
        width: image width.
        detections: detections kept per image.
        repeats: timed calls per model.
        warmup: untimed calls first.
        seed: seed of the images and weights.
        output_dir: where detector-inference.json and .md go.
    """

    kinds: tuple[str, ...] = tuple(TORCHVISION_BUILDERS)
    images: int = 2
    height: int = 480
    width: int = 640
    detections: int = 100
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    output_dir: str = "output/benchmarks"


def randomise_batchnorm(model: torch.nn.Module) -> None:
    """BatchNorm statistics and affine terms away from the identity, as a trained checkpoint's are."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)


def realistic_predictors(model: torch.nn.Module) -> None:
    """Scales the RPN's and the box predictor's random weights down to a trained checkpoint's range: objectness and
    box deltas near zero (proposals spread over the anchors), class scores spread between 0.05 and 1."""
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.mul_(0.1)
        model.rpn.head.bbox_pred.weight.mul_(0.01)
        model.roi_heads.box_predictor.cls_score.weight.mul_(0.03)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(0.01)


def detector_pair(kind: str, settings: dict, folder: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """torchvision's detector of `kind` with random weights (frozen BN, as torchvision runs checkpoints), and ours
    built from its saved state dict."""
    reference = getattr(torchvision.models.detection, TORCHVISION_BUILDERS[kind])(
        weights=None, weights_backbone=None, num_classes=91, **settings)
    randomise_batchnorm(reference)
    realistic_predictors(reference)
    path = folder / f"{kind}.pth"
    torch.save(reference.state_dict(), path)
    reference = backbones.freeze_batchnorm(reference).eval()
    ours = heads.build_detector(kind, backbone="resnet50", num_classes=91, weights=path, **settings).eval()
    return ours, reference


def detection_differences(ours: list[dict], reference: list[dict]) -> dict:
    """Whether two detectors' outputs on the same images hold the same detections in the same order (counts and
    labels equal), and the largest difference of each output key (inf where counts or labels differ)."""
    same = all(len(a["labels"]) == len(b["labels"]) and torch.equal(a["labels"], b["labels"])
               for a, b in zip(ours, reference))
    keys = sorted(reference[0]) if reference else []
    return dict(same_detections=same, **{f"max_diff_{key}": max_abs_difference([o[key] for o in ours],
                                                                               [r[key] for r in reference])
                                         if same else math.inf for key in keys})


def benchmark_detector_inference(settings: InferenceSettings) -> list[dict]:
    """One row per detector kind: median seconds of ours (fast and exact) and torchvision's on the same images, the
    ratio torchvision / ours and the largest difference between their detections."""
    print(machine_line())
    torch.manual_seed(settings.seed)
    detector_options = dict(min_size=settings.height, max_size=max(settings.height, settings.width),
                            box_detections_per_img=settings.detections)
    images = [torch.rand(3, settings.height, settings.width) for _ in range(settings.images)]
    rows = []
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        for kind in settings.kinds:
            ours, reference = detector_pair(kind, detector_options, Path(folder))
            exact = heads.set_fast_inference(copy.deepcopy(ours), False)
            runs = {"ours": lambda: ours(images), "exact": lambda: exact(images),
                    "torchvision": lambda: reference(images)}
            _, peak = peak_memory_after_warmup(runs, {"ours": ours, "exact": exact, "torchvision": reference})
            times, outputs = alternate(runs, repeats=settings.repeats, warmup=settings.warmup, desc=kind)
            seconds = medians(times)
            rows.append(dict(case=f"{kind} R50-FPN, {settings.images} x {settings.width}x{settings.height}",
                             detections=sum(len(o["scores"]) for o in outputs["ours"]),
                             ours_s=seconds["ours"], exact_s=seconds["exact"], torchvision_s=seconds["torchvision"],
                             ratio=seconds["torchvision"] / seconds["ours"],
                             exact_ratio=seconds["torchvision"] / seconds["exact"],
                             **detection_differences(outputs["ours"], outputs["torchvision"]),
                             exact_max_diff=max_abs_difference(outputs["exact"], outputs["torchvision"]),
                             ours_peak_mib=peak["ours"], torchvision_peak_mib=peak["torchvision"],
                             samples=times))
    print(table(rows))
    write_report(rows, settings.output_dir, "detector-inference", lines=[machine_line()], options=asdict(settings))
    return rows


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "detector_inference_arguments")})
