"""Malformed COCO annotation and result files through eval_det.py: fatal problems are one message naming the file
and the id or key, with exit code 2 and no traceback; suspect ones are counted warnings, and the 12 numbers stay
pycocotools' own."""
import contextlib
import copy
import io
import json
import logging
import math
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from workbench import cli
from workbench.cli import evaluation
from workbench.data import coco_files
from workbench.data.coco_files import read_annotation_file, read_results
from workbench.errors import UserError


def square(ann_id, image_id, category_id, x, y, side):
    polygon = [x, y, x + side, y, x + side, y + side, x, y + side]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x, y, side, side],
            "area": side * side, "iscrowd": 0, "segmentation": [polygon]}


GT = {
    "images": [{"id": 1, "file_name": "1.png", "width": 100, "height": 100},
               {"id": 2, "file_name": "2.png", "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "box"}],
    "annotations": [square(1, 1, 1, 10, 10, 30), square(2, 1, 2, 50, 50, 20), square(3, 2, 1, 5, 5, 60)],
}


def rle(polygons, height=100, width=100):
    encoded = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


DETECTIONS = [dict(image_id=a["image_id"], category_id=a["category_id"], bbox=[v + 1 for v in a["bbox"]], score=0.9,
                   segmentation=rle(a["segmentation"])) for a in GT["annotations"]]


def edit(base, change):
    """A function giving a changed copy of `base` (the ground truth or the detections)."""
    def edited():
        content = copy.deepcopy(base)
        change(content)
        return content
    return edited


def edit_gt(change):
    return edit(GT, change)


def edit_detections(change):
    return edit(DETECTIONS, change)


def annotation(index, **fields):
    return edit_gt(lambda gt: gt["annotations"][index].update(fields))


def without(section, index, field):
    return edit_gt(lambda gt: gt[section][index].pop(field))


FATAL = {  # case: (gt text or editor, detections text or editor, what the message must say)
    "truncated gt JSON": ('{"images": [{"id": 1', None, r"gt.json: not valid JSON"),
    "empty gt file": ("", None, r"gt.json: not valid JSON"),
    "gt is a list": ("[]", None, r"gt.json: expected a JSON dict \(COCO annotation file\), got a list"),
    "no images": (edit_gt(lambda gt: gt.pop("images")), None, r"gt.json: missing or non-list section 'images'"),
    "no categories": (edit_gt(lambda gt: gt.pop("categories")), None, r"missing or non-list section 'categories'"),
    "no annotations": (edit_gt(lambda gt: gt.pop("annotations")), None, r"non-list section 'annotations'"),
    "bbox as a string": (annotation(1, bbox="10 10 5 5"), None, r"annotation id 2: field 'bbox' must be \[x, y"),
    "bbox of three numbers": (annotation(0, bbox=[1, 2, 3]), None, r"annotation id 1: field 'bbox' must be"),
    "image id as a string": (edit_gt(lambda gt: gt["images"][1].update(id="2")), None,
                             r"image at position 1: field 'id' must be int"),
    "image without width": (without("images", 0, "width"), None, r"image id 1: field 'width' must be int"),
    "annotation without image_id": (without("annotations", 2, "image_id"), None,
                                    r"annotation id 3: field 'image_id' must be int"),
    "segmentation a number": (annotation(0, segmentation=7), None, r"annotation id 1: field 'segmentation' must be"),
    "category without name": (without("categories", 1, "name"), None, r"category id 2: field 'name' must be str"),
    "results are a dict": (None, "{}", r"dets.json: expected a JSON list"),
    "truncated results": (None, '[{"image_id": 1', r"dets.json: not valid JSON"),
    "detection without score": (None, edit_detections(lambda d: d[1].pop("score")),
                                r"detection at position 1: field 'score' must be int or float"),
    "score as a string": (None, edit_detections(lambda d: d[0].update(score="high")), r"field 'score' must be"),
    "detection bbox of two numbers": (None, edit_detections(lambda d: d[2].update(bbox=[1, 2])),
                                      r"detection at position 2 \(image id 2\): field 'bbox' must be"),
    "detection on an unknown image": (None, edit_detections(lambda d: d[0].update(image_id=9)),
                                      r"image id 9 is not in the annotation file"),
    "segm without segmentation": (None, edit_detections(lambda d: d[0].pop("segmentation")),
                                  r"iou type 'segm' needs a 'segmentation'"),
    "segm with an RLE of another size": (annotation(1, segmentation={"size": [50, 50], "counts": "PPYo0"}), None,
                                         r"annotation id 2: its RLE is \[50, 50\] but image 1 is \[100, 100\]"),
}

SUSPECT = {  # case: (gt editor or None, detections editor or None, the warning's words, iou types pycocotools runs)
    "NaN box": (annotation(1, bbox=[float("nan"), 1, 5, 5]), None, "1 NaN or infinite boxes (ids 2)", ("bbox",)),
    "negative box": (annotation(1, bbox=[10, 10, -5, 5]), None, "1 boxes of negative width or height", ("bbox",)),
    "box outside the image": (annotation(2, bbox=[90, 90, 30, 30]), None, "1 boxes outside the image (ids 3)",
                              ("bbox", "segm")),
    "annotation on a missing image": (annotation(1, image_id=7), None, "annotations on images missing",
                                      ("bbox", "segm")),
    "unknown category": (annotation(0, category_id=5), None, "1 annotations of unknown category ids (ids 1)",
                         ("bbox", "segm")),
    "duplicate annotation id": (annotation(2, id=1), None, "1 duplicate annotation ids (ids 1)", ("bbox", "segm")),
    "polygon of two points": (annotation(1, segmentation=[[50, 50, 70, 70]]), None, "polygons of fewer than 3 points",
                              ("bbox",)),
    "RLE of another size": (annotation(1, segmentation={"size": [50, 50], "counts": "PPYo0"}), None,
                            "RLEs of another size than their image", ("bbox",)),
    "missing area": (without("annotations", 0, "area"), None,
                     "1 annotations without 'area' (ids 1); derived from the mask or box", ()),
    "missing iscrowd": (without("annotations", 0, "iscrowd"), None,
                        "1 annotations without 'iscrowd' (ids 1); taken as 0", ()),
    "detection of an unknown category": (None, edit_detections(lambda d: d[0].update(category_id=8)),
                                         "detections of unknown category ids", ("bbox", "segm")),
    "detection with a NaN box": (None, edit_detections(lambda d: d[1].update(bbox=[1, float("nan"), 2, 2])),
                                 "NaN or infinite boxes", ("segm",)),
}


def write(tmp_path, gt, detections):
    """Writes the case's files; text is written as it is, editors' results as JSON."""
    for name, content, default in (("gt.json", gt, GT), ("dets.json", detections, DETECTIONS)):
        content = default if content is None else content
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(
            content() if callable(content) else content))
    return tmp_path / "gt.json", tmp_path / "dets.json"


def run_eval_det(tool_parser, gt, detections, iou_types=("bbox", "segm")):
    return cli.run(evaluation.evaluate_detections, tool_parser("eval_det"),
                   ["--gt", str(gt), "--dets", str(detections), "--iou-types", *iou_types])


@pytest.mark.parametrize("case", FATAL)
def test_a_fatal_problem_is_one_message_and_exit_code_2(tmp_path, tool_parser, capsys, case):
    gt, detections, message = FATAL[case]
    with pytest.raises(SystemExit) as exit:
        run_eval_det(tool_parser, *write(tmp_path, gt, detections))
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.splitlines()) == 1 and "Traceback" not in error
    assert re.search(message, error), error


def test_a_missing_file_is_named_and_debug_shows_the_traceback(tmp_path, tool_parser, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit:
        run_eval_det(tool_parser, tmp_path / "nowhere.json", tmp_path / "dets.json")
    assert exit.value.code == 2
    assert f"COCO annotation file not found: {tmp_path / 'nowhere.json'}" in capsys.readouterr().err
    monkeypatch.setenv("WORKBENCH_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        run_eval_det(tool_parser, tmp_path / "nowhere.json", tmp_path / "dets.json")


def pycocotools_stats(gt, detections, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt))
        evaluator = COCOeval(coco, coco.loadRes(json.loads(detections.read_text())), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float("nan") if v < 0 else float(v) for v in evaluator.stats]


@pytest.mark.parametrize("case", SUSPECT)
def test_a_suspect_entry_is_a_counted_warning_and_the_numbers_stay_pycocotools(tmp_path, tool_parser, caplog, case):
    gt, detections, warning, compared = SUSPECT[case]
    gt_file, detections_file = write(tmp_path, gt, detections)
    with caplog.at_level(logging.WARNING):
        results = run_eval_det(tool_parser, gt_file, detections_file, ("bbox",) if "RLE" in case else ("bbox", "segm"))
    assert sum(warning in record.getMessage() for record in caplog.records) == 1, caplog.text
    for iou_type in compared:
        ours = list(results[iou_type]["stats"].values())
        theirs = pycocotools_stats(gt_file, detections_file, iou_type)
        assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(ours, theirs)), (iou_type, ours,
                                                                                                 theirs)


def write_json(content) -> Path:
    """Writes `content` to a fresh temporary file (hypothesis runs many examples per test function)."""
    handle, name = tempfile.mkstemp(suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(content, file)
    return Path(name)


def mostly(good, bad):
    """`good`, and `bad` one time in 40."""
    return st.integers(0, 39).flatmap(lambda k: bad if k == 0 else good)


numbers = st.one_of(st.integers(-5, 120), st.floats(-5, 120), st.sampled_from([math.nan, math.inf, -math.inf]))
anything = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=3), st.lists(numbers, max_size=3))
ids = mostly(st.integers(1, 4), anything)
boxes = mostly(st.lists(st.one_of(st.integers(-5, 120), st.floats(-5, 120)), min_size=4, max_size=4).map(
    lambda box: box if box[0] else [math.nan, *box[1:]]), anything)
polygons = st.lists(st.lists(st.integers(0, 120), min_size=2, max_size=10), max_size=3)
rles = st.fixed_dictionaries({"size": st.lists(st.integers(1, 120), min_size=2, max_size=2),
                              "counts": st.one_of(st.just("PPYo0"), st.lists(st.integers(0, 50), max_size=4))})
segmentations = mostly(st.one_of(polygons, rles), anything)
sizes = mostly(st.integers(1, 120), anything)


@st.composite
def entries(draw, fields: dict, optional: tuple = ()):
    """A dict of `fields` (name: strategy); each is missing one time in 40, those in `optional` one time in 3."""
    return {name: draw(strategy) for name, strategy in fields.items()
            if draw(st.integers(0, 2 if name in optional else 39))}


images = entries({"id": ids, "width": sizes, "height": sizes, "file_name": st.just("1.png")})
categories = entries({"id": ids, "name": mostly(st.just("c"), anything)})
annotations = entries({"id": ids, "image_id": ids, "category_id": ids, "bbox": boxes, "segmentation": segmentations,
                       "area": numbers, "iscrowd": st.integers(0, 1)}, optional=("area", "iscrowd", "segmentation"))
files = st.fixed_dictionaries({"images": st.lists(images, max_size=3), "categories": st.lists(categories, max_size=3),
                               "annotations": st.lists(annotations, max_size=6)})


@settings(max_examples=300, deadline=None)
@given(content=files, training=st.booleans())
def test_any_annotation_file_is_read_or_refused_with_a_user_error(content, training):
    path = write_json(content)
    try:
        read = read_annotation_file(path, training=training)
    except UserError as error:
        assert str(path) in str(error)
        event("refused")
        return
    finally:
        path.unlink()
    event(f"read, {len(read['annotations'])} of {len(content['annotations'])} annotations kept")
    image_sizes = {image["id"]: (image["width"], image["height"]) for image in read["images"]}
    category_ids = {category["id"] for category in read["categories"]}
    assert all("area" in a and "iscrowd" in a for a in read["annotations"])
    if not training:
        assert len(read["annotations"]) == len(content["annotations"]), "evaluation keeps every annotation"
        return
    kept_ids = [a["id"] for a in read["annotations"]]
    assert len(kept_ids) == len(set(kept_ids))
    for annotation in read["annotations"]:
        x, y, width, height = annotation["bbox"]
        assert all(math.isfinite(v) for v in (x, y, width, height)) and width >= 0 and height >= 0
        assert annotation["image_id"] in image_sizes and annotation["category_id"] in category_ids
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, dict):
            assert segmentation["size"] == list(image_sizes[annotation["image_id"]])[::-1]
        elif segmentation:
            assert all(len(polygon) >= 6 for polygon in segmentation)


detections = st.lists(entries({"image_id": ids, "category_id": ids, "bbox": boxes, "score": numbers,
                               "segmentation": st.one_of(rles, anything)}), max_size=5)


@settings(max_examples=300, deadline=None)
@given(results=detections, segm=st.booleans())
def test_any_results_file_is_read_or_refused_with_a_user_error(results, segm):
    path = write_json(results)
    try:
        assert json.dumps(read_results(path, path, {1, 2}, {1, 2}, segm)) == json.dumps(results)
    except UserError as error:
        assert str(path) in str(error)
    finally:
        path.unlink()


inside = st.one_of(st.integers(0, 50), st.floats(0, 50))
near_plain_annotations = entries({
    "id": ids, "image_id": ids, "category_id": ids, "area": numbers, "iscrowd": st.integers(0, 1),
    "bbox": mostly(st.lists(inside, min_size=4, max_size=4), boxes),
    "segmentation": mostly(st.one_of(st.lists(st.lists(inside, min_size=6, max_size=10), max_size=2),
                                     st.fixed_dictionaries({"size": st.just([100, 100]), "counts": st.just("PPYo0")})),
                           segmentations)}, optional=("area", "iscrowd", "segmentation"))


@settings(max_examples=300, deadline=None)
@given(content=files, near_plain=st.lists(near_plain_annotations, max_size=6), segm=st.booleans())
def test_the_fast_path_takes_only_annotations_the_long_way_passes_unchanged(content, near_plain, segm):
    """`plain_annotation` (one pass for the common case) may accept an annotation only where `annotation_suspects`
    finds nothing, raises nothing and changes nothing; random files and mostly-good annotations on GT's images."""
    try:
        images = coco_files.index_images(content["images"], Path("gt.json"), defaultdict(list))
    except UserError:
        return
    images.update({image["id"]: image for image in GT["images"]})
    content["annotations"] += near_plain
    categories = {c.get("id") for c in content["categories"] if isinstance(c, dict) and type(c.get("id")) is int}
    categories |= {1, 2}
    seen: set[int] = set()
    for position, annotation in enumerate(content["annotations"]):
        if coco_files.plain_annotation(copy.deepcopy(annotation), images, categories, set(seen)):
            event("plain annotation")
            checked = copy.deepcopy(annotation)
            assert coco_files.annotation_suspects(checked, position, images, categories, set(seen), Path("gt.json"),
                                                  segm) == []
            assert checked == annotation
        if isinstance(annotation, dict) and type(annotation.get("id")) is int:
            seen.add(annotation["id"])


@settings(max_examples=300, deadline=None)
@given(results=detections, segm=st.booleans())
def test_the_fast_path_takes_only_results_the_long_way_passes_silently(results, segm):
    for result in results:
        if coco_files.plain_result(result, {1, 2}, {1, 2}, segm):
            event("plain result")
            with mock.patch.object(coco_files, "plain_result", return_value=False), \
                    mock.patch.object(coco_files, "warn_counted") as warned:
                assert coco_files.read_results([copy.deepcopy(result)], Path("dets.json"), {1, 2}, {1, 2}, segm) == [
                    result]
            warned.assert_not_called()
