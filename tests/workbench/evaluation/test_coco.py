import contextlib
import copy
import io
import json
import math
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from workbench.evaluation import coco as coco_eval
from workbench.evaluation.coco import STATS, detections_to_coco, evaluate_coco, format_results
from workbench.evaluation.results import save_results

SIZE = 64
CATEGORIES = [{"id": 3, "name": "circle"}, {"id": 7, "name": "square"}]
LABEL_TO_CAT_ID = {1: 3, 2: 7}


def rectangle(ann_id: int, image_id: int, category_id: int, box: list[float], iscrowd: int = 0) -> dict:
    x, y, w, h = box
    if iscrowd:
        mask = np.zeros((SIZE, SIZE), dtype=np.uint8, order="F")
        mask[y:y + h, x:x + w] = 1
        segmentation = mask_util.encode(mask)
        segmentation["counts"] = segmentation["counts"].decode()
    else:
        segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h], "area": w * h,
            "iscrowd": iscrowd, "segmentation": segmentation}


def write_gt(tmp_path, annotations: list[dict], num_images: int = 3) -> str:
    images = [{"id": i, "file_name": f"{i}.png", "height": SIZE, "width": SIZE} for i in range(1, num_images + 1)]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return str(path)


@pytest.fixture
def gt_file(tmp_path) -> str:
    """Three images, two categories with non-contiguous ids, small and medium objects; image 3 has none."""
    return write_gt(tmp_path, [
        rectangle(1, 1, 3, [4, 4, 20, 20]),
        rectangle(2, 1, 7, [30, 30, 30, 30]),
        rectangle(3, 2, 7, [10, 10, 40, 40]),
        rectangle(4, 2, 3, [50, 2, 10, 12]),
    ])


def perfect_outputs(gt_file: str) -> tuple[list[dict], list[int]]:
    """What a perfect Mask R-CNN would return for every image of `gt_file`."""
    coco = COCO(gt_file)
    cat_id_to_label = {c: label for label, c in LABEL_TO_CAT_ID.items()}
    outputs = []
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=torch.float)
        masks = torch.tensor(np.array([coco.annToMask(a) for a in anns]), dtype=torch.float)
        outputs.append({"boxes": boxes.reshape(-1, 4), "labels": torch.tensor([cat_id_to_label[a["category_id"]]
                                                                               for a in anns], dtype=torch.int64),
                        "scores": torch.linspace(0.9, 0.5, len(anns)), "masks": masks.reshape(-1, 1, SIZE, SIZE)})
    return outputs, coco.getImgIds()


def box_detection(image_id: int, category_id: int, box: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}


def assert_same_numbers(a: dict, b: dict) -> None:
    for iou_type in a:
        for key in ("stats", "per_category"):
            assert a[iou_type][key].keys() == b[iou_type][key].keys()
            for name, value in a[iou_type][key].items():
                other = b[iou_type][key][name]
                assert (math.isnan(value) and math.isnan(other)) or value == pytest.approx(other, abs=1e-12), name


def test_perfect_detections_score_one(gt_file):
    outputs, image_ids = perfect_outputs(gt_file)
    results = evaluate_coco(gt_file, detections_to_coco(outputs, image_ids, LABEL_TO_CAT_ID))
    for iou_type in ("bbox", "segm"):
        stats = results[iou_type]["stats"]
        assert list(stats) == list(STATS)
        for name in ("AP", "AP50", "AP75", "APs", "APm", "AR1", "AR10", "AR100", "ARs", "ARm"):
            assert stats[name] == pytest.approx(1.0), (iou_type, name)
        assert math.isnan(stats["APl"]) and math.isnan(stats["ARl"])  # no large objects: undefined, not 0
        assert results[iou_type]["per_category"] == pytest.approx({"circle": 1.0, "square": 1.0})


def test_detections_to_coco_round_trips_non_contiguous_ids(gt_file):
    outputs, image_ids = perfect_outputs(gt_file)
    detections = detections_to_coco(outputs, image_ids, LABEL_TO_CAT_ID)
    coco = COCO(gt_file)
    assert len(detections) == len(coco.getAnnIds())
    by_box = {(d["image_id"], tuple(d["bbox"])): d for d in detections}
    for ann in coco.loadAnns(coco.getAnnIds()):
        detection = by_box[ann["image_id"], tuple(map(float, ann["bbox"]))]
        assert detection["category_id"] == ann["category_id"]
        assert isinstance(detection["segmentation"]["counts"], str)
        assert np.array_equal(mask_util.decode(detection["segmentation"]), coco.annToMask(ann))
    json.dumps(detections)


def test_unknown_label_is_a_clear_error():
    output = {"boxes": torch.tensor([[0.0, 0, 5, 5]]), "labels": torch.tensor([9]), "scores": torch.tensor([0.5])}
    with pytest.raises(ValueError, match=r"labels \[9\]"):
        detections_to_coco([output], [1], LABEL_TO_CAT_ID)


def test_shifted_box_matches_only_low_iou_thresholds(tmp_path):
    gt = write_gt(tmp_path, [rectangle(1, 1, 3, [10, 10, 40, 40])], num_images=1)
    shifted = box_detection(1, 3, [18, 10, 40, 40], 0.9)  # IoU 1280 / 1920 = 0.67: a match at 0.50..0.65 only
    stats = evaluate_coco(gt, [shifted], iou_types=("bbox",))["bbox"]["stats"]
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(0.0)
    assert stats["AP"] == pytest.approx(0.4)


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_empty_detections_give_undefined_numbers_and_a_warning(gt_file, tmp_path, backend, caplog):
    empty_file = tmp_path / "empty.json"
    empty_file.write_text("[]")
    for detections in ([], empty_file):
        caplog.clear()
        results = evaluate_coco(gt_file, detections, backend=backend)
        for iou_type in ("bbox", "segm"):
            assert all(math.isnan(v) for v in results[iou_type]["stats"].values())
            assert list(results[iou_type]["per_category"]) == ["circle", "square"]
        assert [r.getMessage() for r in caplog.records] == ["no detections to evaluate: the 12 numbers are undefined"]


def test_crowd_region_and_image_without_ground_truth(tmp_path):
    gt = write_gt(tmp_path, [rectangle(1, 1, 3, [4, 4, 20, 20]), rectangle(2, 1, 3, [30, 30, 30, 30], iscrowd=1)],
                  num_images=2)
    true_positive = box_detection(1, 3, [4, 4, 20, 20], 0.8)
    on_crowd = box_detection(1, 3, [32, 32, 20, 20], 0.9)
    on_empty_image = box_detection(2, 3, [4, 4, 20, 20], 0.95)
    assert evaluate_coco(gt, [true_positive, on_crowd], iou_types="bbox")["bbox"]["stats"]["AP"] == pytest.approx(1)
    stats = evaluate_coco(gt, [true_positive, on_crowd, on_empty_image], iou_types="bbox")["bbox"]["stats"]
    assert stats["AP"] == pytest.approx(0.5)  # the false positive outranks the only true positive


def test_segm_needs_segmentation(gt_file):
    with pytest.raises(ValueError, match="segmentation"):
        evaluate_coco(gt_file, [box_detection(1, 3, [4, 4, 20, 20], 0.9)], iou_types=("bbox", "segm"))


def test_detections_on_unknown_images_are_a_clear_error(gt_file):
    with pytest.raises(ValueError, match=r"detection at position 0 \(image id 42\): image id 42 is not in the "
                                         r"annotation file"):
        evaluate_coco(gt_file, [box_detection(42, 3, [4, 4, 20, 20], 0.9)], iou_types="bbox")


def test_faster_backend_missing_says_how_to_install(gt_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(ImportError, match=r"pip install \.\[fast\]"):
        evaluate_coco(gt_file, [], backend="faster")


def test_faster_backend_gives_the_same_numbers(gt_file):
    outputs, image_ids = perfect_outputs(gt_file)
    generator = torch.Generator().manual_seed(0)
    for output in outputs:
        n = len(output["boxes"])
        jitter = torch.randn(n, 4, generator=generator) * 3
        output["boxes"] = torch.cat([output["boxes"] + jitter, torch.tensor([[20.0, 20, 50, 45]])])
        output["labels"] = torch.cat([output["labels"], torch.tensor([2])])
        output["scores"] = torch.rand(n + 1, generator=generator)
        output["masks"] = torch.cat([torch.roll(output["masks"], shifts=2, dims=-1),
                                     torch.rand(1, 1, SIZE, SIZE, generator=generator)])
    detections = detections_to_coco(outputs, image_ids, LABEL_TO_CAT_ID)
    reference = evaluate_coco(gt_file, detections)
    assert 0.0 < reference["bbox"]["stats"]["AP"] < 1.0 and 0.0 < reference["segm"]["stats"]["AP"] < 1.0
    assert_same_numbers(reference, evaluate_coco(gt_file, detections, backend="faster"))
    assert_same_numbers(reference, evaluate_coco(COCO(gt_file), detections, backend="faster"))


def test_unknown_backend_and_iou_type(gt_file):
    with pytest.raises(ValueError, match="backend"):
        evaluate_coco(gt_file, [], backend="detectron2")
    with pytest.raises(ValueError, match="keypoints"):
        evaluate_coco(gt_file, [], iou_types=("keypoints",))


def test_evaluation_is_quiet_unless_verbose(gt_file, capsys):
    detections = [box_detection(1, 3, [4, 4, 20, 20], 0.9)]
    evaluate_coco(gt_file, detections, iou_types="bbox")
    assert capsys.readouterr().out == ""
    evaluate_coco(gt_file, detections, iou_types="bbox", verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_format_and_save_results(gt_file, tmp_path):
    outputs, image_ids = perfect_outputs(gt_file)
    results = evaluate_coco(gt_file, detections_to_coco(outputs, image_ids, LABEL_TO_CAT_ID))
    table = format_results(results)
    assert all(word in table for word in ("bbox", "segm", "AP50", "ARl", "circle", "square"))
    path = save_results(results, tmp_path / "out" / "eval_results.json")
    saved = json.loads(path.read_text())
    assert saved["segm"]["stats"]["AP"] == pytest.approx(1.0)
    assert saved["bbox"]["stats"]["APl"] is None


def test_encode_masks_of_no_detections():
    assert coco_eval.encode_masks(torch.zeros(0, 1, SIZE, SIZE)) == []


def random_polygon(rng: np.random.Generator, height: int, width: int) -> list[float]:
    """A star-shaped polygon of 3 to 12 points around a random centre (may reach out of the image)."""
    n = int(rng.integers(3, 13))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(2, max(height, width) / 3, n)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).ravel().round(2).tolist()


def random_coco(seed: int) -> tuple[dict, list[dict]]:
    """A small random annotation dict and results: images of several sizes, single and multi-polygon objects,
    compressed RLEs, crowd regions as uncompressed RLEs; two jittered detections per object (one in ten of the
    wrong category) and random ones, with and without `bbox`, tied scores, one image past 100 detections and more
    than 255 detections in all."""
    rng = np.random.default_rng(seed)
    sizes = [(48, 64), (64, 64), (80, 40), (64, 96), (32, 32), (96, 64)]
    images = [{"id": i + 10, "file_name": f"{i}.png", "height": h, "width": w} for i, (h, w) in enumerate(sizes)]
    annotations, detections = [], []
    for image in images:
        h, w = image["height"], image["width"]
        shapes = []  # (polygons, category id) of the detections
        for _ in range(int(rng.integers(0, 6))):
            kind = rng.choice(["polygon", "polygons", "rle", "crowd"], p=[0.5, 0.2, 0.15, 0.15])
            polygons = [random_polygon(rng, h, w) for _ in range(2 if kind == "polygons" else 1)]
            rle = mask_util.merge(mask_util.frPyObjects(polygons, h, w))
            if kind in ("polygon", "polygons"):
                segmentation = polygons
            elif kind == "rle":
                segmentation = {"size": [h, w], "counts": rle["counts"].decode()}
            else:
                segmentation = {"size": [h, w], "counts": uncompressed_counts(mask_util.decode(rle))}
            category_id = int(rng.choice([3, 7]))
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": category_id,
                                "bbox": [float(v) for v in mask_util.toBbox(rle)], "area": float(mask_util.area(rle)),
                                "iscrowd": int(kind == "crowd"), "segmentation": segmentation})
            shapes += [([(np.asarray(p) + rng.normal(0, 1.5, len(p))).round(2).tolist() for p in polygons],
                        category_id if rng.random() < 0.9 else 10 - category_id) for _ in range(2)]
        shapes += [([random_polygon(rng, h, w)], int(rng.choice([3, 7])))
                   for _ in range(int(rng.integers(110, 130) if image["id"] == 11 else rng.integers(30, 60)))]
        for polygons, category_id in shapes:
            rle = mask_util.merge(mask_util.frPyObjects(polygons, h, w))
            detection = {"image_id": image["id"], "category_id": category_id,
                         "score": float(rng.choice([0.5, 0.25, rng.random()])),
                         "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}}
            if rng.random() < 0.7:
                x, y, bw, bh = (mask_util.toBbox(rle) + rng.normal(0, 2, 4)).tolist()
                detection["bbox"] = [x, y, max(1.0, bw), max(1.0, bh)]
            detections.append(detection)
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}, detections


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """The uncompressed RLE counts of a binary mask (column-major runs, starting with zeros), as COCO's crowds."""
    flat = mask.ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    return counts if flat[0] == 0 else [0, *counts]


def plain_library(gt_file: str, detections: list[dict], iou_type: str, library: str = "pycocotools") -> dict:
    """The 12 numbers of pycocotools (or faster-coco-eval) used directly, `bbox` dropped for segm as detectron2 does;
    the AP of each category is the library's own AP of an evaluation restricted to that category (`params.catIds`)."""
    if library == "pycocotools":
        coco_class, cocoeval = COCO, COCOeval
    else:
        import faster_coco_eval
        coco_class, cocoeval = faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster

    def stats(category_ids=None) -> dict[str, float]:
        evaluator = cocoeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iou_type)
        if category_ids is not None:
            evaluator.params.catIds = category_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        return {name: float("nan") if v < 0 else float(v) for name, v in zip(STATS, evaluator.stats)}

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_class(gt_file)
        results = [{k: v for k, v in d.items() if not (iou_type == "segm" and k == "bbox")} for d in detections]
        per_category = {category["name"]: stats([category["id"]])["AP"] for category in coco_gt.dataset["categories"]}
        return {iou_type: {"stats": stats(), "per_category": per_category}}


def assert_identical(ours: dict, theirs: dict, tolerance: float = 0.0) -> None:
    for iou_type in theirs:
        for key in ("stats", "per_category"):
            a, b = ours[iou_type][key], theirs[iou_type][key]
            assert a.keys() == b.keys()
            assert all(abs(a[k] - b[k]) <= tolerance or (math.isnan(a[k]) and math.isnan(b[k])) for k in a), (
                iou_type, key, a, b)


# faster-coco-eval's C++ accumulate computes precision as tp / (tp + fp) where pycocotools divides by
# tp + fp + np.spacing(1): the two differ when tp + fp == 1 (1 / (1 + eps) is 1 - eps), which moves an AP by at most
# a few units in the last place. That is the faster backend's only difference: it gives faster-coco-eval's numbers.
FASTER_TOLERANCE = 1e-15


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_both_backends_give_the_numbers_of_the_libraries_themselves(tmp_path, seed, backend):
    """Random sets: crowds, single and multi-polygon and RLE ground truth, detections with and without bbox,
    tied scores, more than 100 detections in an image; the gt as a file and as a COCO object."""
    dataset, detections = random_coco(seed)
    gt_file = str(tmp_path / "instances.json")
    (tmp_path / "instances.json").write_text(json.dumps(dataset))
    boxed = [d for d in detections if "bbox" in d]
    untouched = copy.deepcopy(detections)
    ours = {"segm": evaluate_coco(gt_file, detections, ("segm",), backend=backend),
            "bbox": evaluate_coco(gt_file, boxed, ("bbox",), backend=backend),
            "both": evaluate_coco(COCO(gt_file), boxed, ("bbox", "segm"), backend=backend)}
    assert detections == untouched, "evaluate_coco must not write into the caller's results"
    assert 0 < ours["segm"]["segm"]["stats"]["AP"] < 1 and 0 < ours["bbox"]["bbox"]["stats"]["AP"] < 1
    for library, tolerance in [("pycocotools", 0.0 if backend == "pycocotools" else FASTER_TOLERANCE)] + (
            [("faster", 0.0)] if backend == "faster" else []):
        assert_identical(ours["segm"], plain_library(gt_file, detections, "segm", library), tolerance)
        assert_identical(ours["bbox"], plain_library(gt_file, boxed, "bbox", library), tolerance)
        assert_identical(ours["both"], {**plain_library(gt_file, boxed, "bbox", library),
                                        **plain_library(gt_file, boxed, "segm", library)}, tolerance)


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_results_go_through_pycocotools_load_res(gt_file, monkeypatch, backend):
    """Each iou type's results are pycocotools' `loadRes` of copies of the results (`bbox` dropped for segm)."""
    load_res, loaded = COCO.loadRes, []

    def recording_load_res(self, results):
        loaded.append(copy.deepcopy(results))
        return load_res(self, results)

    monkeypatch.setattr(COCO, "loadRes", recording_load_res)
    detections = detections_to_coco(*perfect_outputs(gt_file), LABEL_TO_CAT_ID)
    untouched = copy.deepcopy(detections)
    evaluate_coco(gt_file, detections, ("bbox", "segm"), backend=backend)
    assert detections == untouched
    assert loaded == [untouched, [{k: v for k, v in d.items() if k != "bbox"} for d in untouched]]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_backend_indexes_what_pycocotools_loaded(gt_file, iou_type):
    """The faster backend's results object is its own COCO class holding pycocotools' loadRes annotations."""
    import faster_coco_eval
    detections = detections_to_coco(*perfect_outputs(gt_file), LABEL_TO_CAT_ID)
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCO(gt_file).loadRes(coco_eval._results_for(detections, iou_type))
        loaded = coco_eval._load_results(faster_coco_eval.COCO(gt_file), detections, iou_type)

    def as_json(annotations: list[dict]) -> str:  # loadRes gives NumPy areas and boxes
        return json.dumps(annotations, default=lambda value: value.tolist())

    assert type(loaded) is faster_coco_eval.COCO
    assert as_json(loaded.dataset["annotations"]) == as_json(reference.dataset["annotations"])
    assert sorted(loaded.anns) == sorted(reference.anns) and loaded.getImgIds() == reference.getImgIds()


def test_evaluation_restores_the_garbage_collector(gt_file):
    import gc
    outputs, image_ids = perfect_outputs(gt_file)
    detections = detections_to_coco(outputs, image_ids, LABEL_TO_CAT_ID)
    evaluate_coco(gt_file, detections)
    assert gc.isenabled()
    gc.disable()
    try:
        evaluate_coco(gt_file, detections)
        assert not gc.isenabled()
    finally:
        gc.enable()
