"""COCO evaluation, ours against pycocotools, in one process on the same synthetic COCO-like ground truth file (5000
images by default, like val2017) and results (boxes and masks), bbox and segm: the 12 numbers must be identical.

Ours is `evaluate_coco(gt_file, detections, (iou_type,), backend)` as a user calls it: the file read and checked,
the results checked and loaded (pycocotools' `loadRes`, indexed by the backend's COCO class), then the backend's
COCOeval evaluate, accumulate, summarize. The peer is pycocotools as detectron2 calls it: `COCO(gt_file)`, `loadRes`
(of copies made before the clock starts, `bbox` dropped for segm), `COCOeval` evaluate, accumulate, summarize. After
a warm-up round the two alternate (ours first, then the peer first, ...), and the table reports the median of
`repeats` rounds. The benchmark's own data is frozen out of the cyclic garbage collector first, so that neither side
pays for walking it.

The machine line, the alternation, the table and the JSON and markdown report (`--output-dir`) are `timing`'s.
"""
import contextlib
import gc
import io
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from backbones.old_paths import moved_names
from workbench.benchmarks import timing
from workbench.evaluation import coco


@dataclass
class CocoEvalSettings:
    """The synthetic COCO set and the rounds of the coco-eval case (`tools/benchmark.py coco-eval`).

    Attributes:
        images: images of the set.
        categories: categories of the set.
        gts_per_image: mean ground-truth objects per image.
        dets_per_image: detections per image.
        size: image height and width.
        seed: seed of the set.
        backend: our engine (of `coco.BACKENDS`).
        repeats: timed rounds; the median is shown.
        warmup: untimed rounds first.
        output_dir: where coco-eval.json and .md go.
    """

    images: int = 5000
    categories: int = 3
    gts_per_image: int = 5
    dets_per_image: int = 20
    size: int = 640
    seed: int = 0
    backend: str = "faster"
    repeats: int = 3
    warmup: int = 1
    output_dir: str = "output/benchmarks"


def ellipse(box: np.ndarray, vertices: int = 16) -> list[float]:
    """The polygon of the ellipse inscribed in an xywh box."""
    x, y, w, h = box
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([x + w / 2 * (1 + np.cos(angles)), y + h / 2 * (1 + np.sin(angles))], axis=1).ravel().tolist()


def random_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n xywh boxes inside the image, sides from 8 px to 60% of it: small, medium and large objects."""
    wh = rng.uniform(8, 0.6 * size, (n, 2))
    return np.concatenate([rng.uniform(0, size - wh), wh], axis=1)


def synthetic_image(rng: np.random.Generator, image_id: int, settings: CocoEvalSettings
                    ) -> tuple[list[dict], list[dict]]:
    """One image's ground truth (polygons, 2% crowd) and detections (RLEs): three jittered copies of each object,
    10% with the wrong category, the rest of `dets_per_image` random false positives."""
    size = settings.size
    gt_boxes = random_boxes(rng, rng.poisson(settings.gts_per_image), size)
    gt_categories = rng.integers(1, settings.categories + 1, len(gt_boxes))
    copies = np.repeat(np.arange(len(gt_boxes)), 3)
    jittered = gt_boxes[copies] + rng.normal(0, 0.08, (len(copies), 4)) * np.tile(gt_boxes[copies, 2:], 2)
    det_boxes = np.concatenate([jittered, random_boxes(rng, max(0, settings.dets_per_image - len(copies)), size)])
    det_boxes[:, 2:] = det_boxes[:, 2:].clip(min=1)
    det_categories = np.concatenate([gt_categories[copies],
                                     rng.integers(1, settings.categories + 1, len(det_boxes) - len(copies))])
    wrong = rng.random(len(det_boxes)) < 0.1
    det_categories = np.where(wrong, rng.integers(1, settings.categories + 1, len(det_boxes)), det_categories)
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


def synthetic_coco(settings: CocoEvalSettings) -> tuple[dict, list[dict]]:
    """A deterministic annotation dict and COCO results with boxes and masks."""
    rng = np.random.default_rng(settings.seed)
    images, annotations, detections = [], [], []
    for image_id in tqdm(range(1, settings.images + 1), desc="synthetic COCO", leave=False):
        gts, dets = synthetic_image(rng, image_id, settings)
        images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "height": settings.size,
                       "width": settings.size})
        annotations += gts
        detections += dets
    for ann_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = ann_id
    categories = [{"id": c, "name": f"category{c}"} for c in range(1, settings.categories + 1)]
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


def benchmark_coco_eval(settings: CocoEvalSettings) -> list[dict]:
    """Prints the machine, times ours and pycocotools per iou type, and writes the rows as JSON and markdown to
    `--output-dir`; raises when the 12 numbers differ."""
    backend, repeats, warmup = settings.backend, settings.repeats, settings.warmup
    lines = [timing.machine_line()]
    print(lines[0], flush=True)
    dataset, detections = synthetic_coco(settings)
    lines.append(f"workload: {settings.images:,} images of {settings.size}x{settings.size}, {settings.categories} "
                 f"categories, {len(dataset['annotations']):,} ground-truth polygons, {len(detections):,} detections "
                 f"(boxes and RLE masks); median of {repeats} alternating rounds after {warmup} warm-up; ours: "
                 f"evaluate_coco(backend={backend!r}), peer: pycocotools {package_version('pycocotools')} COCO + "
                 f"loadRes + COCOeval; faster-coco-eval {package_version('faster-coco-eval')}")
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
    timing.write_report(rows, settings.output_dir, "coco-eval", lines=lines, columns=COLUMNS, options=asdict(settings))
    different = [row["iou_type"] for row in rows if row["max_abs_diff"] != 0]
    if different:
        print_coco_eval_table(rows)
        raise RuntimeError(f"the 12 numbers of ours and pycocotools differ for {different}")
    return rows


COLUMNS = {"iou_type": "iou type", "ours_seconds": "ours s", "pycocotools_seconds": "pycocotools s",
           "ratio": "pycocotools / ours", "AP": "AP", "max_abs_diff": "max abs diff of the 12 numbers"}


def print_coco_eval_table(rows: list[dict]) -> None:
    print(timing.table(rows, COLUMNS))


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "coco_eval_arguments")})
