"""COCO evaluation, ours against pycocotools, in one process on the same synthetic COCO-like ground truth file (5000
images by default, like val2017) and results (boxes and masks), bbox and segm: the 12 numbers must be identical.

Ours is `evaluate_coco(gt_file, detections, (iou_type,), backend)` as a user calls it: the file read and checked,
the results checked, the result COCO object built, evaluated, summarised. The peer is pycocotools as detectron2
calls it: `COCO(gt_file)`, `loadRes` (of copies made before the clock starts, `bbox` dropped for segm), `COCOeval`
evaluate, accumulate, summarize. After a warm-up round the two alternate (ours first, then the peer first, ...),
and the table reports the median of `repeats` rounds. The benchmark's own data is frozen out of the cyclic garbage
collector first, so that neither side pays for walking it.

The machine line, the alternation, the table and the JSON and markdown report (`--output-dir`) are `timing`'s.
"""
import argparse
import contextlib
import gc
import io
import json
import math
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from workbench.benchmarks import timing
from workbench.evaluation import coco

DEFAULTS = {"images": 5000, "categories": 3, "gts_per_image": 5, "dets_per_image": 20, "size": 640, "seed": 0,
            "backend": "faster", "repeats": 3, "warmup": 1, "output_dir": "output/benchmarks"}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the coco-eval case (for `tools/benchmark.py coco-eval`)."""
    parser.add_argument("--images", type=int, default=DEFAULTS["images"])
    parser.add_argument("--categories", type=int, default=DEFAULTS["categories"])
    parser.add_argument("--gts-per-image", type=int, default=DEFAULTS["gts_per_image"],
                        help="mean ground-truth objects per image")
    parser.add_argument("--dets-per-image", type=int, default=DEFAULTS["dets_per_image"])
    parser.add_argument("--size", type=int, default=DEFAULTS["size"], help="image height and width")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--backend", default=DEFAULTS["backend"], choices=coco.BACKENDS, help="our engine")
    parser.add_argument("--repeats", type=int, default=DEFAULTS["repeats"], help="timed rounds; the median is shown")
    parser.add_argument("--warmup", type=int, default=DEFAULTS["warmup"], help="untimed rounds first")
    parser.add_argument("--output-dir", default=DEFAULTS["output_dir"], help="where coco-eval.json and .md go")
    return parser


def option(args: argparse.Namespace, name: str):
    """`args.name`, or its default where the command line that made `args` does not have that option."""
    return getattr(args, name, DEFAULTS[name])


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
    for image_id in tqdm(range(1, args.images + 1), desc="synthetic COCO", leave=False):
        gts, dets = synthetic_image(rng, image_id, args)
        images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "height": args.size, "width": args.size})
        annotations += gts
        detections += dets
    for ann_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = ann_id
    categories = [{"id": c, "name": f"category{c}"} for c in range(1, args.categories + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def pycocotools_run(gt_file: Path, detections: list[dict], iou_type: str, calls: int) -> Callable[[], dict]:
    """The peer: pycocotools as detectron2 calls it, for `calls` calls. Each gets its own copy of the results, made
    here, before any clock starts (loadRes writes into them; `bbox` dropped for segm, as detectron2 and
    `evaluate_coco` do)."""
    copies = [coco._results_for(detections, iou_type) for _ in range(calls)]

    def run() -> dict:
        results = copies.pop()
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(str(gt_file))
            evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return {name: coco._missing_to_nan(value) for name, value in zip(coco.STATS, evaluator.stats)}

    return run


def stats_difference(a: dict, b: dict) -> float:
    """Largest difference of the 12 numbers; undefined (nan) on both sides counts as equal, on one side as inf."""
    return max(0.0 if math.isnan(a[k]) and math.isnan(b[k]) else
               math.inf if math.isnan(a[k]) or math.isnan(b[k]) else abs(a[k] - b[k]) for k in coco.STATS)


def benchmark_coco_eval(args: argparse.Namespace) -> list[dict]:
    """Prints the machine, times ours and pycocotools per iou type, and writes the rows as JSON and markdown to
    `--output-dir`; raises when the 12 numbers differ."""
    backend, repeats, warmup = option(args, "backend"), option(args, "repeats"), option(args, "warmup")
    lines = [timing.machine_line()]
    print(lines[0], flush=True)
    dataset, detections = synthetic_coco(args)
    lines.append(f"workload: {args.images:,} images of {args.size}x{args.size}, {args.categories} categories, "
                 f"{len(dataset['annotations']):,} ground-truth polygons, {len(detections):,} detections (boxes and "
                 f"RLE masks); median of {repeats} alternating rounds after {warmup} warm-up; ours: evaluate_coco("
                 f"backend={backend!r}), peer: pycocotools {package_version('pycocotools')} COCO + loadRes + "
                 f"COCOeval; faster-coco-eval {package_version('faster-coco-eval')}")
    print(lines[1], flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        gt_file = Path(folder) / "instances.json"
        gt_file.write_text(json.dumps(dataset))
        del dataset
        gc.collect()
        gc.freeze()  # the benchmark's own data: neither side's collections should walk it
        try:
            for iou_type in coco.IOU_TYPES:
                def ours(iou_type=iou_type) -> dict:
                    return coco.evaluate_coco(gt_file, detections, (iou_type,), backend)[iou_type]["stats"]

                peer = pycocotools_run(gt_file, detections, iou_type, warmup + repeats)
                times, stats = timing.alternate({"ours": ours, "pycocotools": peer}, repeats, warmup,
                                                desc=f"{iou_type}: ours / pycocotools")
                seconds = timing.medians(times)
                rows.append(dict(iou_type=iou_type, ours_seconds=seconds["ours"],
                                 pycocotools_seconds=seconds["pycocotools"],
                                 ratio=seconds["pycocotools"] / seconds["ours"], AP=stats["ours"]["AP"],
                                 max_abs_diff=stats_difference(stats["ours"], stats["pycocotools"]),
                                 ours_runs=times["ours"], pycocotools_runs=times["pycocotools"]))
        finally:
            gc.unfreeze()
    timing.write_report(rows, option(args, "output_dir"), "coco-eval", lines=lines, columns=COLUMNS, options=vars(args))
    different = [row["iou_type"] for row in rows if row["max_abs_diff"] != 0]
    if different:
        print_coco_eval_table(rows)
        raise RuntimeError(f"the 12 numbers of ours and pycocotools differ for {different}")
    return rows


COLUMNS = {"iou_type": "iou type", "ours_seconds": "ours s", "pycocotools_seconds": "pycocotools s",
           "ratio": "pycocotools / ours", "AP": "AP", "max_abs_diff": "max abs diff of the 12 numbers"}


def print_coco_eval_table(rows: list[dict]) -> None:
    print(timing.table(rows, COLUMNS))
