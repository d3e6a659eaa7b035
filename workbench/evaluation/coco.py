"""COCO box and mask evaluation: model outputs to COCO results, the 12 COCO numbers and per-category AP.

The ground truth is always the original annotation JSON (or a COCO object loaded from it), never one rebuilt from
transformed data. pycocotools is the reference backend; faster-coco-eval (`pip install .[fast]`) is a drop-in that
gives the same numbers faster. Both go through public APIs only: results are loaded by pycocotools' `loadRes`, the
reference's own loader, which the faster backend's own COCO class then indexes, and each evaluates with its COCOeval.

Example:
    results = evaluate_coco("instances_val.json", detections_to_coco(outputs, image_ids, dataset.label_to_cat_id))
    print(format_results(results))
"""
import contextlib
import functools
import gc
import inspect
import io
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_convert

from workbench.data.coco_files import read_annotation_file, read_results
from workbench.errors import UserError

logger = logging.getLogger(__name__)

IOU_TYPES = ("bbox", "segm")
BACKENDS = ("pycocotools", "faster")
STATS = {
    "AP": "AP  @[IoU=0.50:0.95 | area=   all | maxDets=100]",
    "AP50": "AP  @[IoU=0.50      | area=   all | maxDets=100]",
    "AP75": "AP  @[IoU=0.75      | area=   all | maxDets=100]",
    "APs": "AP  @[IoU=0.50:0.95 | area= small | maxDets=100]",
    "APm": "AP  @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "APl": "AP  @[IoU=0.50:0.95 | area= large | maxDets=100]",
    "AR1": "AR  @[IoU=0.50:0.95 | area=   all | maxDets=  1]",
    "AR10": "AR  @[IoU=0.50:0.95 | area=   all | maxDets= 10]",
    "AR100": "AR  @[IoU=0.50:0.95 | area=   all | maxDets=100]",
    "ARs": "AR  @[IoU=0.50:0.95 | area= small | maxDets=100]",
    "ARm": "AR  @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "ARl": "AR  @[IoU=0.50:0.95 | area= large | maxDets=100]",
}


def encode_masks(masks: torch.Tensor, threshold: float = 0.5) -> list[dict]:
    """Compressed RLEs of one image's masks, all encoded in one pycocotools call.

    Args:
        masks: [N, 1, H, W] probabilities.
        threshold: a pixel belongs to the mask when its probability is above this.

    Returns:
        N RLE dicts with `size` [H, W] and `counts` as str (JSON-ready).
    """
    if len(masks) == 0:
        return []
    binary = (masks.detach().cpu()[:, 0] > threshold).view(torch.uint8)
    rles = mask_util.encode(np.asfortranarray(binary.permute(1, 2, 0).numpy()))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("utf-8")
    return rles


def _category_ids(labels: list[int], label_to_cat_id: dict[int, int]) -> list[int]:
    missing = sorted(set(labels) - set(label_to_cat_id))
    if missing:
        raise ValueError(f"labels {missing} have no COCO category id; label_to_cat_id covers {sorted(label_to_cat_id)}")
    return [label_to_cat_id[label] for label in labels]


def image_to_coco(output: dict, image_id: int, label_to_cat_id: dict[int, int],
                  mask_threshold: float = 0.5) -> list[dict]:
    """COCO results of one image's model output (see `detections_to_coco`)."""
    boxes = box_convert(output["boxes"].detach().cpu().float(), "xyxy", "xywh").tolist()
    scores = output["scores"].detach().cpu().tolist()
    category_ids = _category_ids(output["labels"].detach().cpu().tolist(), label_to_cat_id)
    results = [{"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}
               for box, score, category_id in zip(boxes, scores, category_ids)]
    if "masks" in output:
        for result, rle in zip(results, encode_masks(output["masks"], mask_threshold)):
            result["segmentation"] = rle
    return results


def detections_to_coco(outputs: list[dict], image_ids: list[int], label_to_cat_id: dict[int, int],
                       mask_threshold: float = 0.5) -> list[dict]:
    """COCO results of torchvision-style detector outputs.

    Args:
        outputs: per image `boxes` [N, 4] xyxy in original pixels, `labels` [N] contiguous 1..K, `scores` [N] and
            optionally `masks` [N, 1, H, W] probabilities at original size.
        image_ids: the COCO image id of each output.
        label_to_cat_id: contiguous label to COCO category id.
        mask_threshold: probability above which a mask pixel is on.

    Returns:
        One dict per detection: `image_id`, `category_id`, `bbox` [x, y, w, h], `score`, and `segmentation`
        (compressed RLE, `counts` as str) when the outputs have masks.
    """
    if len(outputs) != len(image_ids):
        raise ValueError(f"{len(outputs)} outputs but {len(image_ids)} image ids")
    results = []
    for output, image_id in zip(outputs, image_ids):
        results += image_to_coco(output, int(image_id), label_to_cat_id, mask_threshold)
    return results


class _Backend(NamedTuple):
    coco_class: type
    cocoeval: Callable  # (coco_gt, coco_dt, iou_type) -> a COCOeval


def _backend(backend: str) -> _Backend:
    """The COCO class and the COCOeval factory of `backend`; faster-coco-eval's prints through `print`, as
    pycocotools does, so that `_quiet` silences both."""
    if backend == "pycocotools":
        return _Backend(COCO, COCOeval)
    if backend == "faster":
        try:
            import faster_coco_eval
        except ImportError as error:
            raise ImportError("backend='faster' needs faster-coco-eval: pip install .[fast]") from error
        options = {"print_function": print}
        if "rle_iou_max_workers" in inspect.signature(faster_coco_eval.COCOeval_faster).parameters:
            options["rle_iou_max_workers"] = 1  # its mask IoU holds the GIL: threads only add their own overhead
        return _Backend(faster_coco_eval.COCO, functools.partial(faster_coco_eval.COCOeval_faster, **options))
    raise UserError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _quiet(verbose: bool):
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


@contextlib.contextmanager
def _no_cycle_collection():
    """Pauses Python's cyclic garbage collector. Reading and indexing a COCO file and its results makes millions of
    dicts and lists and no reference cycles; each full collection that their count sets off walks them all again
    (half the time spent building 20 000 results). Memory is still freed by reference counting."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _coco_from_dict(dataset: dict, coco_class: type):
    coco = coco_class()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _load_gt(gt, coco_class: type, segm: bool):
    """A COCO object of `coco_class`; an annotation file is read once, checked and completed."""
    if isinstance(gt, coco_class):
        return gt
    if isinstance(gt, (str, os.PathLike)):
        content = read_annotation_file(gt, segm=segm)
        content.pop("suspect_ids")
        return _coco_from_dict(content, coco_class)
    if hasattr(gt, "dataset"):
        return _coco_from_dict(gt.dataset, coco_class)
    raise TypeError(f"gt must be an annotation file path or a COCO object, got {type(gt).__name__}")


def _undefined(coco_gt) -> dict:
    """The 12 numbers and the per-category AP, all undefined (nan)."""
    return {"stats": dict.fromkeys(STATS, float("nan")),
            "per_category": {category["name"]: float("nan") for category in coco_gt.dataset["categories"]}}


def _results_for(detections: list[dict], iou_type: str) -> list[dict]:
    """Copies the result dicts (loadRes writes into them); drops `bbox` for segm so that the small/medium/large
    split uses the mask area, as detectron2 does."""
    if iou_type == "segm":
        return [{k: v for k, v in d.items() if k != "bbox"} for d in detections]
    return [dict(d) for d in detections]


def _missing_to_nan(value: float) -> float:
    """pycocotools writes -1 where a number is undefined (e.g. no ground truth in that area range)."""
    return float("nan") if value < 0 else float(value)


def per_category_ap(evaluator, coco_gt) -> dict[str, float]:
    """AP@[.50:.95] per category name (area all, 100 detections); nan for a category without ground truth."""
    params = evaluator.params
    precision = np.asarray(evaluator.eval["precision"])  # [IoU, recall, category, area, maxDets]
    area, max_dets = params.areaRngLbl.index("all"), len(params.maxDets) - 1
    result = {}
    for k, cat_id in enumerate(params.catIds):
        valid = precision[:, :, k, area, max_dets]
        valid = valid[valid > -1]
        result[coco_gt.cats[int(cat_id)]["name"]] = float(valid.mean()) if valid.size else float("nan")
    return result


def _load_results(coco_gt, detections: list[dict], iou_type: str):
    """The results' COCO object, of `coco_gt`'s class: pycocotools' `loadRes` of copies of the results, given to
    faster-coco-eval's COCO as a dataset dict when `coco_gt` is one. Both libraries' loadRes compute each result
    mask's area and box one call at a time; pycocotools' calls cost a third of faster-coco-eval's, whose loadRes took
    a third of the faster backend's segm evaluation."""
    results = _results_for(detections, iou_type)
    if isinstance(coco_gt, COCO):
        return coco_gt.loadRes(results)
    images = _coco_from_dict({"images": coco_gt.dataset["images"], "categories": coco_gt.dataset["categories"],
                              "annotations": []}, COCO)
    return _coco_from_dict(images.loadRes(results).dataset, type(coco_gt))


def _evaluate(coco_gt, detections: list[dict], iou_type: str, engine: _Backend, verbose: bool) -> dict:
    with _quiet(verbose):
        evaluator = engine.cocoeval(coco_gt, _load_results(coco_gt, detections, iou_type), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: _missing_to_nan(value) for name, value in zip(STATS, evaluator.stats[:len(STATS)])}
    return {"stats": stats, "per_category": per_category_ap(evaluator, coco_gt)}


def evaluate_coco(gt: str | Path | COCO, detections: list[dict] | str | Path, iou_types=("bbox", "segm"),
                  backend: str = "pycocotools", verbose: bool = False) -> dict:
    """The 12 COCO numbers and per-category AP of COCO results against the original annotation file.

    Args:
        gt: the original annotation JSON, or a COCO object loaded from it (of either backend).
        detections: COCO result dicts (see `detections_to_coco`) or a results JSON file.
        iou_types: any of "bbox" and "segm".
        backend: "pycocotools" (reference) or "faster" (faster-coco-eval, same numbers).
        verbose: let the backend print its own progress and summary.

    Returns:
        Per iou type `{"stats": {"AP": .., "AP50": .., ..., "ARl": ..}, "per_category": {name: AP}}`, values in
        0-1, nan where COCO leaves a number undefined (pycocotools' -1), e.g. APl without large objects.
    """
    iou_types = (iou_types,) if isinstance(iou_types, str) else tuple(iou_types)
    unknown = set(iou_types) - set(IOU_TYPES)
    if unknown:
        raise UserError(f"iou_types must be among {IOU_TYPES}, got {sorted(unknown)}")
    engine = _backend(backend)
    with _no_cycle_collection():
        with _quiet(verbose):
            coco_gt = _load_gt(gt, engine.coco_class, segm="segm" in iou_types)
        if "segm" in iou_types:
            check_masks(coco_gt, gt)
        detections = read_results(detections, Path("detections"), set(coco_gt.getImgIds()),
                                  set(coco_gt.getCatIds()), segm="segm" in iou_types)
        empty = [name for name, entries in (("images", coco_gt.dataset["images"]),
                                            ("annotations", coco_gt.dataset["annotations"]),
                                            ("detections", detections)) if not entries]
        if empty:
            logger.warning("no %s to evaluate: the 12 numbers are undefined", " and no ".join(empty))
            return {iou_type: _undefined(coco_gt) for iou_type in iou_types}
        return {iou_type: _evaluate(coco_gt, detections, iou_type, engine, verbose) for iou_type in iou_types}


def check_masks(coco_gt, gt) -> None:
    """Raises a UserError naming the ground truth when one of its annotations has no `segmentation` to compare."""
    missing = [a["id"] for a in coco_gt.dataset["annotations"] if "segmentation" not in a]
    if missing:
        name = gt if isinstance(gt, (str, os.PathLike)) else "the ground truth"
        raise UserError(f"{name}: {len(missing)} of {len(coco_gt.dataset['annotations'])} annotations (ids "
                        f"{', '.join(map(str, missing[:5]))}{', ...' if len(missing) > 5 else ''}) have no "
                        "'segmentation', which segm evaluation compares; evaluate bbox only (--iou-types bbox)")


def _cell(value: float) -> str:
    return f"{value:>8.3f}" if not math.isnan(value) else f"{'-':>8}"


def format_results(results: dict) -> str:
    """A table of the 12 COCO numbers, iou types side by side, then one of per-category AP ('-' is undefined)."""
    iou_types = list(results)
    header = "".join(f"{iou_type:>8}" for iou_type in iou_types)
    lines = [f"{'metric':<8}{'':<46}{header}"]
    for name, description in STATS.items():
        lines.append(f"{name:<8}{description:<46}" + "".join(_cell(results[t]["stats"][name]) for t in iou_types))
    names = list(dict.fromkeys(name for t in iou_types for name in results[t]["per_category"]))
    if names:
        width = max(len("per-category AP"), *map(len, names)) + 2
        lines += ["", f"{'per-category AP':<{width}}{header}"]
        for name in names:
            lines.append(f"{name:<{width}}" + "".join(_cell(results[t]["per_category"].get(name, float("nan")))
                                                      for t in iou_types))
    return "\n".join(lines)
