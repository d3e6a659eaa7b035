"""Speed benchmarks against the peer library, run side by side on the same weights and input.

Examples:
    python tools/benchmark.py backbone
    python tools/benchmark.py backbone --model resnet101 --size 320 --batch 2 --repeats 20
    python tools/benchmark.py coco-eval
    python tools/benchmark.py coco-eval --images 5000 --repeats 3
    python tools/benchmark.py detector
"""
import argparse
import copy
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import torch
import torchvision
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d
from tqdm import tqdm

import backbones
import bench_detector
import coco_eval

RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    backbone = commands.add_parser("backbone", help="our features_only ResNet vs torchvision's IntermediateLayerGetter")
    backbone.add_argument("--model", default="resnet50", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                                                   "resnet152"])
    backbone.add_argument("--size", type=int, default=224, help="input height and width")
    backbone.add_argument("--batch", type=int, default=1)
    backbone.add_argument("--repeats", type=int, default=15, help="timed rounds per variant")
    backbone.add_argument("--warmup", type=int, default=2, help="untimed rounds per variant")
    backbone.add_argument("--threads", type=int, default=torch.get_num_threads())
    detector = commands.add_parser("detector", help="the demo's Mask R-CNN training step vs torchvision's")
    bench_detector.add_arguments(detector)
    evaluation = commands.add_parser("coco-eval", help="faster-coco-eval vs pycocotools on the same synthetic results")
    evaluation.add_argument("--images", type=int, default=500)
    evaluation.add_argument("--categories", type=int, default=3)
    evaluation.add_argument("--gts-per-image", type=int, default=5, help="mean ground-truth objects per image")
    evaluation.add_argument("--dets-per-image", type=int, default=20)
    evaluation.add_argument("--size", type=int, default=256, help="image height and width")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--repeats", type=int, default=3, help="timed rounds per backend and iou type")
    return parser


def time_once(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return time.perf_counter() - start


def max_difference(a, b) -> float:
    maps_a = list(a.values()) if isinstance(a, dict) else a
    maps_b = list(b.values()) if isinstance(b, dict) else b
    return max((x - y).abs().max().item() for x, y in zip(maps_a, maps_b))


def benchmark_backbone(args: argparse.Namespace) -> list[dict]:
    """Times torchvision's IntermediateLayerGetter, our features_only model and our BN-folded model, interleaved."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = getattr(torchvision.models, args.model)(norm_layer=FrozenBatchNorm2d)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{args.model}.pth"
        torch.save(reference.state_dict(), path)
        ours = backbones.create_backbone(args.model, pretrained=str(path), features_only=True, out_indices=(1, 2, 3, 4),
                                         norm="frozen_bn")
    variants = {
        "torchvision IntermediateLayerGetter": IntermediateLayerGetter(reference, RETURN_LAYERS).eval(),
        "ours features_only": ours.eval(),
        "ours features_only + fuse_batchnorm": backbones.fuse_batchnorm(copy.deepcopy(ours)).eval(),
    }
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.inference_mode():
        expected = variants["torchvision IntermediateLayerGetter"](x)
        differences = {name: max_difference(expected, model(x)) for name, model in variants.items()}
    for model in variants.values():
        for _ in range(args.warmup):
            time_once(model, x)
    times = {name: [] for name in variants}
    for _ in tqdm(range(args.repeats), desc=f"{args.model} {args.batch}x3x{args.size}x{args.size}"):
        for name, model in variants.items():
            times[name].append(time_once(model, x))
    peer = statistics.median(times["torchvision IntermediateLayerGetter"])
    return [dict(variant=name, median_ms=1000 * statistics.median(t), speedup=peer / statistics.median(t),
                 max_abs_diff=differences[name]) for name, t in times.items()]


def print_table(rows: list[dict]) -> None:
    print(f"{'variant':<40} {'median ms':>10} {'speedup vs torchvision':>23} {'max |diff|':>11}")
    for row in rows:
        print(f"{row['variant']:<40} {row['median_ms']:>10.1f} {row['speedup']:>22.2f}x {row['max_abs_diff']:>11.2e}")


def ellipse(box: np.ndarray, vertices: int = 16) -> list[float]:
    """The polygon of the ellipse inscribed in an xywh box."""
    x, y, w, h = box
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([x + w / 2 * (1 + np.cos(angles)), y + h / 2 * (1 + np.sin(angles))], axis=1).ravel().tolist()


def random_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n xywh boxes inside the image, sides from 8 px to 60% of it: small, medium and large objects."""
    wh = rng.uniform(8, 0.6 * size, (n, 2))
    return np.concatenate([rng.uniform(0, size - wh), wh], axis=1)


def synthetic_image(rng: np.random.Generator, image_id: int, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """One image's ground truth (polygons, 2% crowd) and detections (RLEs): three jittered copies of each object,
    10% with the wrong category, the rest of `dets_per_image` random false positives."""
    size = args.size
    gt_boxes = random_boxes(rng, rng.poisson(args.gts_per_image), size)
    gt_categories = rng.integers(1, args.categories + 1, len(gt_boxes))
    copies = np.repeat(np.arange(len(gt_boxes)), 3)
    jittered = gt_boxes[copies] + rng.normal(0, 0.08, (len(copies), 4)) * np.tile(gt_boxes[copies, 2:], 2)
    det_boxes = np.concatenate([jittered, random_boxes(rng, max(0, args.dets_per_image - len(copies)), size)])
    det_boxes[:, 2:] = det_boxes[:, 2:].clip(min=1)
    det_categories = np.concatenate([gt_categories[copies],
                                     rng.integers(1, args.categories + 1, len(det_boxes) - len(copies))])
    wrong = rng.random(len(det_boxes)) < 0.1
    det_categories = np.where(wrong, rng.integers(1, args.categories + 1, len(det_boxes)), det_categories)
    polygons = [ellipse(box) for box in gt_boxes]
    areas = mask_util.area(mask_util.frPyObjects(polygons, size, size)) if polygons else []
    gts = [{"image_id": image_id, "category_id": int(c), "bbox": box.tolist(), "area": float(area),
            "iscrowd": int(rng.random() < 0.02), "segmentation": [polygon]}
           for box, c, area, polygon in zip(gt_boxes, gt_categories, areas, polygons)]
    rles = mask_util.frPyObjects([ellipse(box) for box in det_boxes], size, size)
    detections = [{"image_id": image_id, "category_id": int(c), "bbox": box.tolist(), "score": float(rng.random()),
                   "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}
                  for box, c, rle in zip(det_boxes, det_categories, rles)]
    return gts, detections


def synthetic_coco(args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """A deterministic annotation dict and COCO results with boxes and masks."""
    rng = np.random.default_rng(args.seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, args.images + 1):
        gts, dets = synthetic_image(rng, image_id, args)
        images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "height": args.size, "width": args.size})
        annotations += gts
        detections += dets
    for ann_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = ann_id
    categories = [{"id": c, "name": f"category{c}"} for c in range(1, args.categories + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def stats_difference(a: dict, b: dict) -> float:
    """Largest difference of the 12 numbers; undefined (nan) on both sides counts as equal."""
    return max(0.0 if math.isnan(a[k]) and math.isnan(b[k]) else abs(a[k] - b[k]) for k in coco_eval.STATS)


def benchmark_coco_eval(args: argparse.Namespace) -> list[dict]:
    """Times pycocotools and faster-coco-eval on the same ground-truth file and detections, per iou type."""
    dataset, detections = synthetic_coco(args)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        gt_file = Path(folder) / "instances.json"
        gt_file.write_text(json.dumps(dataset))
        for backend in coco_eval.BACKENDS:
            coco_eval.evaluate_coco(gt_file, [], coco_eval.IOU_TYPES, backend)  # untimed: imports and file caches
        for iou_type in coco_eval.IOU_TYPES:
            times, stats = {backend: [] for backend in coco_eval.BACKENDS}, {}
            for _ in tqdm(range(args.repeats), desc=f"{iou_type}: {args.images} images, {len(detections)} detections"):
                for backend in coco_eval.BACKENDS:
                    start = time.perf_counter()
                    results = coco_eval.evaluate_coco(gt_file, detections, (iou_type,), backend)
                    times[backend].append(time.perf_counter() - start)
                    stats[backend] = results[iou_type]["stats"]
            reference = statistics.median(times["pycocotools"])
            rows += [dict(iou_type=iou_type, backend=backend, seconds=statistics.median(t),
                          speedup=reference / statistics.median(t), AP=stats[backend]["AP"],
                          max_abs_diff=stats_difference(stats["pycocotools"], stats[backend]))
                     for backend, t in times.items()]
    return rows


def print_coco_eval_table(rows: list[dict]) -> None:
    print(f"{'iou type':<9} {'backend':<12} {'seconds':>8} {'speedup vs pycocotools':>23} {'AP':>6} "
          f"{'max |diff| of the 12 numbers':>29}")
    for row in rows:
        print(f"{row['iou_type']:<9} {row['backend']:<12} {row['seconds']:>8.2f} {row['speedup']:>22.2f}x "
              f"{row['AP']:>6.3f} {row['max_abs_diff']:>29.2e}")


def main(args: argparse.Namespace) -> list[dict]:
    if args.command == "detector":
        rows = bench_detector.benchmark_detector(args)
        bench_detector.print_detector_table(rows)
    elif args.command == "coco-eval":
        rows = benchmark_coco_eval(args)
        print_coco_eval_table(rows)
    else:
        rows = benchmark_backbone(args)
        print_table(rows)
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())
