"""Training-step time of the demo's Mask R-CNN R18-FPN against torchvision's own, on the same shapes batch.

torchvision's model is `MaskRCNN(resnet_fpn_backbone("resnet18"))` with CPU settings (pre/post-NMS
600/300 proposals, 128 RoIs per image), at 192 px (the reference the demo is measured against) and at our 128 px.
"""
import argparse
import statistics
import tempfile
import time

import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from tqdm import tqdm

from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.data.coco import CocoDetection, collate_fn
from workbench.data.detection_transforms import build_transforms
from workbench.data.shapes import make_shapes
from workbench.tasks.detection import build_model

TORCHVISION_CPU_SETTINGS = dict(rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                                box_batch_size_per_image=128)


def torchvision_mask_rcnn(size: int) -> torch.nn.Module:
    """torchvision's Mask R-CNN R18-FPN from scratch (trainable BN, every stage trainable)."""
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    return MaskRCNN(backbone, num_classes=4, min_size=size, max_size=size, **TORCHVISION_CPU_SETTINGS)


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch) -> float:
    start = time.perf_counter()
    losses = model(*batch)
    sum(losses.values()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def benchmark_detector(args: argparse.Namespace) -> list[dict]:
    """Median training-step seconds of each model, interleaved, on one batch of shapes."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = make_shapes(folder, args.batch, 1, seed=0)
        dataset = CocoDetection(paths["train_images"], paths["train_annotations"], transforms=build_transforms(True))
        batch = collate_fn([dataset[i] for i in range(args.batch)])
    models = {
        "torchvision Mask R-CNN R18-FPN, 192 px": torchvision_mask_rcnn(192),
        "torchvision Mask R-CNN R18-FPN, 128 px": torchvision_mask_rcnn(128),
        "ours (demo config), 128 px": build_model(load_config(DETECTION_DEFAULTS, args.config), torch.device("cpu")),
    }
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for name, m in models.items()}
    times = {name: [] for name in models}
    for round_index in tqdm(range(args.warmup + args.repeats), desc="training steps"):
        for name, model in models.items():
            elapsed = training_step(model.train(), optimizers[name], batch)
            if round_index >= args.warmup:
                times[name].append(elapsed)
    reference = statistics.median(times["torchvision Mask R-CNN R18-FPN, 192 px"])
    return [dict(model=name, seconds=statistics.median(t), speedup=reference / statistics.median(t))
            for name, t in times.items()]


def print_detector_table(rows: list[dict]) -> None:
    print(f"{'model (batch of shapes, one training step)':<44} {'s/step':>7} {'speedup':>8}")
    for row in rows:
        print(f"{row['model']:<44} {row['seconds']:>7.3f} {row['speedup']:>7.2f}x")
