"""Multi-scale RoIAlign on CPU, ours (`heads.ops.roi_align.MultiScaleRoIAlign`) against torchvision's, on FPN levels
P2-P5 at the shapes our detectors pool: the demo's training batch, and R50-FPN Mask R-CNN's inference and training.

The maps are random NCHW tensors (as the FPN gives them), the boxes random with log-uniform sides, so that every level
gets RoIs. Training cases time the forward on maps that need gradients, then forward and backward; their rows compare
the pooled RoIs and the maps' gradients. The inference case runs without gradients, where ours calls torchvision's
kernel (bit for bit the same detections).
"""
import math
from dataclasses import asdict, dataclass

import torch
import torchvision

from backbones.old_paths import moved_names
from heads.ops.roi_align import MultiScaleRoIAlign
from workbench.benchmarks.timing import alternate, machine_line, max_abs_difference, medians, table, write_report

LEVELS = ["0", "1", "2", "3"]
STRIDES = (4, 8, 16, 32)
SAMPLING_RATIO = 2
# name: (images, channels, image height, width, ((output size, RoIs), ...), training)
CASES = {
    "demo": (4, 64, 128, 128, ((7, 256), (14, 64)), True),
    "r50-inference": (2, 256, 800, 1088, ((7, 1000), (14, 200)), False),
    "r50-training": (2, 256, 800, 1088, ((7, 1024), (14, 128)), True),
}
COLUMNS = {"case": "case", "pooler": "pooler", "pass": "pass", "ours_ms": "ours ms", "torchvision_ms": "torchvision ms",
           "ratio": "torchvision / ours", "max_abs_diff": "max abs diff"}


@dataclass
class RoiAlignSettings:
    """What the `roi-align` case times.

    Attributes:
        cases: of CASES.
        repeats: timed calls per pooler.
        warmup: untimed calls first.
        seed: seed of the maps and boxes.
        output_dir: where roi-align.json and .md go.
    """

    cases: tuple[str, ...] = tuple(CASES)
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    output_dir: str = "output/benchmarks"


def random_boxes(generator: torch.Generator, count: int, height: int, width: int) -> torch.Tensor:
    """`count` (x1, y1, x2, y2) boxes inside the image, sides log-uniform from 8 pixels to 80% of the image."""
    low, high = math.log(8), math.log(0.8 * min(height, width))
    sides = torch.exp(low + (high - low) * torch.rand(count, 2, generator=generator))
    corners = torch.rand(count, 2, generator=generator) * (torch.tensor([width, height]) - sides)
    return torch.cat([corners, corners + sides], dim=1)


def pooler_run(pooler: torch.nn.Module, features: dict[str, torch.Tensor], boxes: list[torch.Tensor],
               image_shapes: list[tuple[int, int]], backward: bool):
    """A call of `pooler`: the pooled RoIs, and with `backward` also the maps' gradients for a fixed output gradient."""
    def run():
        pooled = pooler(features, boxes, image_shapes)
        if not backward:
            return pooled
        output_grad = torch.linspace(-1, 1, pooled.numel()).view_as(pooled)
        return pooled, torch.autograd.grad(pooled, list(features.values()), output_grad, materialize_grads=True)
    return run


def benchmark_roi_align(settings: RoiAlignSettings) -> list[dict]:
    """One row per case, pooler and pass: median milliseconds of ours and torchvision's, their ratio and the largest
    difference of their outputs (and gradients)."""
    lines = [machine_line(), f"workload: MultiScaleRoIAlign on P2-P5 (strides {STRIDES}), sampling ratio "
             f"{SAMPLING_RATIO}, random NCHW maps and boxes; median of {settings.repeats} alternating calls after "
             f"{settings.warmup} warm-up"]
    print(*lines, sep="\n", flush=True)
    generator = torch.Generator().manual_seed(settings.seed)
    rows = []
    for case in settings.cases:
        images, channels, height, width, poolers, training = CASES[case]
        image_shapes = [(height, width)] * images
        features = {name: torch.randn(images, channels, height // stride, width // stride,
                                      generator=generator).requires_grad_(training)
                    for name, stride in zip(LEVELS, STRIDES)}
        for output_size, rois in poolers:
            boxes = [random_boxes(generator, rois // images, height, width) for _ in range(images)]
            candidates = {"ours": MultiScaleRoIAlign(LEVELS, output_size, SAMPLING_RATIO),
                          "torchvision": torchvision.ops.MultiScaleRoIAlign(LEVELS, output_size, SAMPLING_RATIO)}
            for backward in (False, True) if training else (False,):
                runs = {name: pooler_run(pooler, features, boxes, image_shapes, backward)
                        for name, pooler in candidates.items()}
                times, outputs = alternate(runs, settings.repeats, settings.warmup,
                                           desc=f"{case} {output_size}x{output_size}")
                seconds = medians(times)
                rows.append({"case": f"{case}: {images} x {channels}x{height}x{width}",
                             "pooler": f"{rois} RoIs {output_size}x{output_size}",
                             "pass": "forward+backward" if backward else "forward" if training else "forward, no grad",
                             "ours_ms": 1000 * seconds["ours"], "torchvision_ms": 1000 * seconds["torchvision"],
                             "ratio": seconds["torchvision"] / seconds["ours"],
                             "max_abs_diff": max_abs_difference(outputs["ours"], outputs["torchvision"]),
                             "samples": times})
    print(table(rows, COLUMNS))
    write_report(rows, settings.output_dir, "roi-align", lines=lines, columns=COLUMNS, options=asdict(settings))
    return rows


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "roi_align_arguments")})
