"""faster-coco-eval against pycocotools on the same synthetic COCO-sized ground truth and results (boxes and
masks), with the 12 numbers compared."""
import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from tqdm import tqdm

from workbench.evaluation import coco


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
    return max(0.0 if math.isnan(a[k]) and math.isnan(b[k]) else abs(a[k] - b[k]) for k in coco.STATS)


def benchmark_coco_eval(args: argparse.Namespace) -> list[dict]:
    """Times pycocotools and faster-coco-eval on the same ground-truth file and detections, per iou type."""
    dataset, detections = synthetic_coco(args)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        gt_file = Path(folder) / "instances.json"
        gt_file.write_text(json.dumps(dataset))
        for backend in coco.BACKENDS:
            coco.evaluate_coco(gt_file, [], coco.IOU_TYPES, backend)  # untimed: imports and file caches
        for iou_type in coco.IOU_TYPES:
            times, stats = {backend: [] for backend in coco.BACKENDS}, {}
            for _ in tqdm(range(args.repeats), desc=f"{iou_type}: {args.images} images, {len(detections)} detections"):
                for backend in coco.BACKENDS:
                    start = time.perf_counter()
                    results = coco.evaluate_coco(gt_file, detections, (iou_type,), backend)
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
