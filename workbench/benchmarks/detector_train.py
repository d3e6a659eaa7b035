"""Training-step time of our Mask R-CNN against torchvision's, on the same batch; one step is the forward pass on
(images, targets), the backward pass of the summed losses, an SGD step and zero_grad.

Rows (`--models`):
    r50-fpn: torchvision's `maskrcnn_resnet50_fpn(num_classes=91)` with random weights and BatchNorm statistics,
        trained as torchvision fine-tunes a checkpoint with `trainable_backbone_layers=3` (frozen BatchNorm, stem
        and layer1 frozen; set here, since torchvision ignores the option without weights), against ours built from
        its state dict by `heads.build_detector` (which freezes the same over `weights`). The batch is `--images`
        random images with random boxes and box-shaped masks. The global seed is reset before every step, so both
        models sample the same anchors and RoIs: their first-step losses must agree to float rounding.
    demo: the demo's Mask R-CNN R18-FPN (configs/mask_rcnn_r18_fpn_shapes_cpu.yaml) from scratch against
        torchvision's `MaskRCNN(resnet_fpn_backbone("resnet18"))` at CPU settings, on a batch of 128 px shapes;
        the architectures differ (narrower FPN and heads), so only the ratio is shown.

The optimizer is training's (`build_optimizer`, default solver) at lr=0: momentum and weight decay are computed, and
every step starts from the same weights. "step MiB" is the peak memory of a step above what was in use before it,
once every model has stepped (`timing.peak_memory_after_warmup`: resident memory on the CPU, allocated CUDA memory on
a GPU). `--device cuda`
trains under fp16 autocast with a GradScaler, channels_last and cudnn.benchmark. The GPU throughput target, Mask
R-CNN R50-FPN with AMP at batch 8 on COCO-sized images:

    python tools/benchmark.py detector-train --device cuda --models r50-fpn --images 8 --height 800 --width 1088
"""
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from backbones.freeze import freeze_stages
from backbones.old_paths import moved_names
from workbench.benchmarks.detector_inference import detector_pair
from workbench.benchmarks.timing import (
    alternate,
    machine_line,
    max_abs_difference,
    max_relative_difference,
    medians,
    peak_memory_after_warmup,
    table,
    write_report,
)
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS, SOLVER_DEFAULTS
from workbench.data.coco import CocoDetection, collate_fn
from workbench.data.detection_transforms import build_transforms
from workbench.data.shapes import make_shapes
from workbench.engine.loop import autocast
from workbench.engine.solver import build_optimizer
from workbench.errors import UserError
from workbench.tasks.detection import build_model

MODELS = ("r50-fpn", "demo")
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mask_rcnn_r18_fpn_shapes_cpu.yaml"
DEMO_SIZE = 128
TORCHVISION_CPU_SETTINGS = dict(rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                                box_batch_size_per_image=128)
FROZEN_STAGES = 1  # stem and layer1: torchvision's trainable_backbone_layers=3
BOXES_PER_IMAGE = 4
COLUMNS = {"case": "case", "images": "images", "ours_s": "ours s/step", "torchvision_s": "torchvision s/step",
           "ours_images_per_s": "ours img/s", "torchvision_images_per_s": "torchvision img/s",
           "ratio": "torchvision/ours", "max_abs_diff": "max|diff| losses", "max_rel_diff": "max rel diff",
           "ours_step_mib": "ours step MiB", "torchvision_step_mib": "torchvision step MiB"}


@dataclass
class TrainSettings:
    """What the `detector-train` case times.

    Attributes:
        models: of MODELS.
        images: images per training step.
        height: r50-fpn image height (the detector's min_size); 800 with width 1088 is COCO-sized.
        width: r50-fpn image width.
        config: the config of our demo detector.
        device: cpu or cuda (fp16 autocast + GradScaler, channels_last, cudnn.benchmark).
        repeats: timed steps per model.
        warmup: untimed steps per model after the compared one.
        seed: seed of the images and of every step.
        output_dir: where detector-train.json and .md go.
    """

    models: tuple[str, ...] = MODELS
    images: int = 2
    height: int = 480
    width: int = 640
    config: str = str(DEMO_CONFIG)
    device: str = "cpu"
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    output_dir: str = "output/benchmarks"


def synthetic_batch(images: int, height: int, width: int, generator: torch.Generator) -> tuple[list, list]:
    """Random images in 0-1 with BOXES_PER_IMAGE random boxes each, their masks filling the boxes."""
    batch_images, targets = [], []
    for _ in range(images):
        corner = torch.rand(BOXES_PER_IMAGE, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        extent = 16 + torch.rand(BOXES_PER_IMAGE, 2, generator=generator) * torch.tensor([width * 0.3, height * 0.3])
        boxes = torch.cat([corner, corner + extent], dim=1).floor()
        masks = torch.zeros(BOXES_PER_IMAGE, height, width, dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
            mask[y1:y2, x1:x2] = 1
        labels = torch.randint(1, 91, (BOXES_PER_IMAGE,), generator=generator)
        batch_images.append(torch.rand(3, height, width, generator=generator))
        targets.append(dict(boxes=boxes, labels=labels, masks=masks))
    return batch_images, targets


def r50_pair(settings: TrainSettings, folder: Path) -> tuple[torch.nn.Module, torch.nn.Module, tuple]:
    """Ours and torchvision's Mask R-CNN R50-FPN on the same weights, and the synthetic batch."""
    detector_options = dict(min_size=settings.height, max_size=max(settings.height, settings.width))
    ours, reference = detector_pair("mask_rcnn", detector_options, folder)
    freeze_stages(reference.backbone.body, FROZEN_STAGES)
    batch = synthetic_batch(settings.images, settings.height, settings.width,
                            torch.Generator().manual_seed(settings.seed))
    return ours, reference, batch


def demo_pair(settings: TrainSettings, folder: Path) -> tuple[torch.nn.Module, torch.nn.Module, tuple]:
    """Our demo detector and torchvision's Mask R-CNN R18-FPN from scratch, and a batch of shapes."""
    paths = make_shapes(folder, settings.images, 0, seed=settings.seed, size=DEMO_SIZE)
    dataset = CocoDetection(paths["train_images"], paths["train_annotations"], transforms=build_transforms(True))
    batch = collate_fn([dataset[i] for i in range(settings.images)])
    ours = build_model(load_config(DETECTION_DEFAULTS, settings.config), torch.device("cpu"))
    return ours, torchvision_demo_detector(ours.num_classes), batch


def torchvision_demo_detector(num_classes: int) -> MaskRCNN:
    """torchvision's Mask R-CNN R18-FPN from scratch (trainable BatchNorm) for the demo's 128 px shapes, at CPU
    settings: the peer of our demo detector."""
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                   norm_layer=torch.nn.BatchNorm2d)
    return MaskRCNN(backbone, num_classes=num_classes, min_size=DEMO_SIZE, max_size=DEMO_SIZE,
                    **TORCHVISION_CPU_SETTINGS)


def training_step(model: torch.nn.Module, batch: tuple, device: torch.device, seed: int) -> Callable[[], dict]:
    """One training step of `model` on `batch` (already on `device`), seeded with `seed`; returns the losses."""
    model.train()
    optimizer = build_optimizer(model, dict(SOLVER_DEFAULTS, lr=0.0))
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def step() -> dict:
        torch.manual_seed(seed)
        with autocast(device, device.type == "cuda"):
            losses = model(*batch)
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return {name: loss.detach().float() for name, loss in losses.items()}
    return step


def to_device(batch: tuple, device: torch.device) -> tuple:
    """The (images, targets) batch with every tensor on `device`."""
    images, targets = batch
    return ([image.to(device) for image in images],
            [{key: value.to(device) if torch.is_tensor(value) else value for key, value in target.items()}
             for target in targets])


def time_pair(settings: TrainSettings, name: str, ours: torch.nn.Module, reference: torch.nn.Module, batch: tuple,
              compare: bool) -> dict:
    """One row: the first steps' losses compared (when `compare`), then alternating timed steps."""
    device = torch.device(settings.device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.preserve_format
    batch = to_device(batch, device)
    runs = {label: training_step(model.to(device, memory_format=memory_format), batch, device, settings.seed)
            for label, model in (("ours", ours), ("torchvision", reference))}
    first, peak = peak_memory_after_warmup(runs, {"ours": ours, "torchvision": reference}, device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else None
    times, _ = alternate(runs, settings.repeats, settings.warmup, desc=name, synchronize=synchronize)
    seconds = medians(times)
    images = len(batch[0])
    return dict(case=name, images=images, ours_s=seconds["ours"], torchvision_s=seconds["torchvision"],
                ours_images_per_s=images / seconds["ours"], torchvision_images_per_s=images / seconds["torchvision"],
                ratio=seconds["torchvision"] / seconds["ours"],
                max_abs_diff=max_abs_difference(first["ours"], first["torchvision"]) if compare else None,
                max_rel_diff=max_relative_difference(first["ours"], first["torchvision"]) if compare else None,
                ours_step_mib=peak["ours"], torchvision_step_mib=peak["torchvision"],
                losses={label: {key: float(value) for key, value in losses.items()} for label, losses in first.items()},
                samples=times)


def benchmark_detector_train(settings: TrainSettings) -> list[dict]:
    """Prints the machine and one row per model pair; writes detector-train.json and .md."""
    if settings.device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda needs a CUDA GPU; torch.cuda.is_available() is False here")
        torch.backends.cudnn.benchmark = True
    cuda = settings.device == "cuda"
    setting = "fp16 autocast + GradScaler, channels_last, cudnn.benchmark" if cuda else "fp32"
    memory = "peak CUDA memory" if cuda else "peak resident memory"
    lines = [machine_line(), (
        f"workload: one training step (forward, backward of the summed losses, SGD step at lr=0, zero_grad) on "
        f"{settings.device} ({setting}); r50-fpn: {settings.images} random {settings.width}x{settings.height} images, "
        f"torchvision's weights in both, seed reset before every step, first-step losses compared; demo: "
        f"{settings.images} shapes of {DEMO_SIZE} px, other architectures, ratio only; step MiB: {memory} of a step "
        f"above what was in use before it, once both models have stepped; median of {settings.repeats} alternating "
        f"steps after {settings.warmup} warm-up; ratio = torchvision s / ours s")]
    print(*lines, sep="\n", flush=True)
    builders = {"r50-fpn": (r50_pair, "Mask R-CNN R50-FPN, torchvision settings"),
                "demo": (demo_pair, "demo R18-FPN vs torchvision R18-FPN (ratio only)")}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for model in settings.models:
            torch.manual_seed(settings.seed)
            build, name = builders[model]
            ours, reference, batch = build(settings, Path(folder))
            rows.append(time_pair(settings, name, ours, reference, batch, compare=model == "r50-fpn"))
            del ours, reference
    print(table(rows, COLUMNS))
    write_report(rows, settings.output_dir, "detector-train", lines=lines, columns=COLUMNS, options=asdict(settings))
    return rows


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "detector_train_arguments")})
