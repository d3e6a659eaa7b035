"""Reading COCO annotation and result files, for training and evaluation alike: what cannot be read past is a
`UserError` naming the file and the id; what can (suspect entries) is counted, one warning per kind with the first ids
and what is done with them (SUSPECTS: left out of training, kept in evaluation where pycocotools keeps them).

Fatal: a missing file, unparseable JSON, the wrong top-level type, a missing section, fields of the wrong type, results
that are not a list, a result without `score` or on an image the annotation file lacks (pycocotools refuses those).
Suspect: NaN, infinite or negative boxes, boxes outside the image, annotations on missing images, unknown category
ids, duplicate ids, polygons with fewer than 3 points, RLEs of another size than the image, and missing `area` or
`iscrowd` (derived as pycocotools and detectron2 do: the mask's or the box's area, and 0).
"""
import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

from workbench.errors import MissingFileError, UserError

logger = logging.getLogger(__name__)

SECTIONS = ("images", "annotations", "categories")
SHOWN_IDS = 5


def read_json(path: str | Path, expected: type, what: str):
    """The parsed JSON of `path`, which must be a `expected` (dict or list)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} not found: {path}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error}); is the file complete?") from error
    if not isinstance(content, expected):
        raise UserError(f"{path}: expected a JSON {expected.__name__} ({what}), got a {type(content).__name__}")
    return content


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


NUMBER_TYPES = frozenset({int, float})  # exactly what JSON numbers parse to (no bool); other types take the long way


def plain_numbers(values) -> bool:
    """True when `values` is a list of JSON numbers (int or float, not bool): one C-level pass, for the fast paths."""
    return type(values) is list and {*map(type, values)} <= NUMBER_TYPES


def plain_box(bbox) -> bool:
    """True when `bbox` is four JSON numbers, finite, of non-negative width and height (`box_suspect` finds nothing
    without an image). A sum of finite numbers that overflows only sends the box the long way."""
    try:
        return plain_numbers(bbox) and len(bbox) == 4 and math.isfinite(sum(bbox)) and bbox[2] >= 0 and bbox[3] >= 0
    except OverflowError:  # an int too large for a float: the long way says what to do with it
        return False


def check_fields(entry, fields: dict[str, tuple], kind: str, position: int, path: Path) -> None:
    """Raises a UserError when `entry` is no dict or a field of `fields` is missing or of another type."""
    if not isinstance(entry, dict):
        raise UserError(f"{path}: {kind} at position {position} must be a JSON object, got {entry!r:.80}")
    for field, types in fields.items():
        value = entry.get(field)
        if not isinstance(value, types) or isinstance(value, bool):
            name = f"{kind} id {entry['id']}" if is_number(entry.get("id")) else f"{kind} at position {position}"
            expected = " or ".join(t.__name__ for t in types)
            raise UserError(f"{path}: {name}: field {field!r} must be {expected}, got {value!r:.80}")


def check_box(bbox, name: str, path: Path) -> None:
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        raise UserError(f"{path}: {name}: field 'bbox' must be [x, y, width, height] (four numbers), got {bbox!r:.80}")


def box_suspect(bbox: list, image: dict | None) -> str | None:
    """The kind (a key of SUSPECTS) of problem of a well-typed [x, y, w, h] box, or None."""
    if not all(math.isfinite(v) for v in bbox):
        return "nonfinite_box"
    if bbox[2] < 0 or bbox[3] < 0:
        return "negative_box"
    if image and (bbox[0] < 0 or bbox[1] < 0 or bbox[0] + bbox[2] > image["width"] or
                  bbox[1] + bbox[3] > image["height"]):
        return "outside_box"
    return None


def segmentation_suspect(segmentation, image: dict | None, name: str, path: Path) -> str | None:
    """The kind of suspect problem of a segmentation, or None; raises when it is neither polygons nor an RLE."""
    if isinstance(segmentation, list):
        if not all(isinstance(p, list) and all(is_number(v) for v in p) for p in segmentation):
            raise UserError(f"{path}: {name}: field 'segmentation' must be polygons (lists of numbers) or an RLE, "
                            f"got {segmentation!r:.80}")
        return "short_polygon" if any(len(p) < 6 for p in segmentation) else None
    if isinstance(segmentation, dict) and "counts" in segmentation and isinstance(segmentation.get("size"), list):
        if image and list(segmentation["size"]) != [image["height"], image["width"]]:
            return "rle_size"
        return None
    raise UserError(f"{path}: {name}: field 'segmentation' must be polygons or an RLE with 'counts' and 'size', "
                    f"got {segmentation!r:.80}")


KEPT = "kept, as pycocotools keeps them"
DROPPED = "dropped from training"
SUSPECTS = {  # kind: (what was found, what training does, what evaluation does)
    "nonfinite_box": ("NaN or infinite boxes", DROPPED, KEPT),
    "negative_box": ("boxes of negative width or height", DROPPED, KEPT),
    "outside_box": ("boxes outside the image", "clipped to the image", KEPT),
    "short_polygon": ("segmentations with polygons of fewer than 3 points", "those polygons dropped",
                      "those polygons dropped"),
    "no_polygon": ("segmentations of polygons of fewer than 3 points only", DROPPED,
                   "kept with an empty mask, which matches nothing"),
    "rle_size": ("RLEs of another size than their image", DROPPED, KEPT),
    "missing_image": ("annotations on images missing from the file", DROPPED, KEPT),
    "unknown_category": ("annotations of unknown category ids", DROPPED, KEPT),
    "duplicate_id": ("duplicate annotation ids", "all but the first dropped from training", KEPT),
    "duplicate_image": ("duplicate image ids", "the last entry used, as pycocotools does", "the last entry used"),
    "missing_area": ("annotations without 'area'", "derived from the mask or box",
                     "derived from the mask or box, as pycocotools does"),
    "missing_iscrowd": ("annotations without 'iscrowd'", "taken as 0", "taken as 0"),
}
DROPPED_IN_TRAINING = {kind for kind, (_, in_training, _) in SUSPECTS.items() if in_training == DROPPED} | {
    "duplicate_id"}


def warn_counted(path: Path, found: str, ids: list, action: str, label: str = "ids", level: int = logging.WARNING
                 ) -> None:
    """One message for `len(ids)` entries of one kind: the count, the first ids (or positions: `label`) and what is
    done with them."""
    shown = ", ".join(map(str, ids[:SHOWN_IDS])) + (", ..." if len(ids) > SHOWN_IDS else "")
    logger.log(level, "%s: %d %s (%s %s); %s", path, len(ids), found, label, shown, action)


def warn_suspects(path: Path, suspects: dict[str, list], training: bool, level: int) -> None:
    """One counted message per kind of suspect annotation (keys of SUSPECTS)."""
    for kind, ids in suspects.items():
        found, in_training, in_evaluation = SUSPECTS[kind]
        warn_counted(path, found, ids, in_training if training else in_evaluation, level=level)


def read_instances(path: str | Path) -> dict:
    """The parsed COCO instances file at `path`, with its three sections present as lists."""
    content = read_json(path, dict, "COCO annotation file")
    for section in SECTIONS:
        if not isinstance(content.get(section), list):
            raise UserError(f"{path}: missing or non-list section {section!r}; a COCO instances file has "
                            f"{', '.join(SECTIONS)}")
    return content


def index_images(images: list, path: Path, suspects: dict[str, list]) -> dict[int, dict]:
    """The image entries by id, checked: integer id, positive integer width and height."""
    by_id = {}
    for position, image in enumerate(images):
        check_fields(image, {"id": (int,), "width": (int,), "height": (int,)}, "image", position, path)
        if image["width"] <= 0 or image["height"] <= 0:
            raise UserError(f"{path}: image id {image['id']}: 'width' and 'height' must be positive, got "
                            f"{image['width']}x{image['height']}")
        if image["id"] in by_id:
            suspects["duplicate_image"].append(image["id"])
        by_id[image["id"]] = image
    return by_id


def read_annotation_file(path: str | Path, segm: bool = False, training: bool = False,
                         level: int = logging.WARNING) -> dict:
    """A COCO instances file, checked; missing `area` / `iscrowd` filled in, polygons of fewer than 3 points dropped.

    Fatal problems raise a UserError naming the file and the id. Suspect annotations (SUSPECTS) are counted, one
    message per kind at `level`; in evaluation they are kept where pycocotools keeps them, in `training` the
    annotations of DROPPED_IN_TRAINING kinds are left out. Returns the content with `suspect_ids` (kind: ids), and in
    training with the number of `dropped_annotations`.

    Args:
        segm: masks will be compared, so an RLE of another size than its image is fatal.
    """
    path = Path(path)
    content = read_instances(path)
    suspects: dict[str, list] = defaultdict(list)
    images = index_images(content["images"], path, suspects)
    categories = set()
    for position, category in enumerate(content["categories"]):
        check_fields(category, {"id": (int,), "name": (str,)}, "category", position, path)
        categories.add(category["id"])
    seen: set[int] = set()
    kept = []
    for position, annotation in enumerate(content["annotations"]):
        if plain_annotation(annotation, images, categories, seen):
            kept.append(annotation)
            continue
        kinds = annotation_suspects(annotation, position, images, categories, seen, path, segm)
        for kind in kinds:
            suspects[kind].append(annotation["id"])
        if not (training and DROPPED_IN_TRAINING.intersection(kinds)):
            kept.append(annotation)
    if training:
        content["dropped_annotations"] = len(content["annotations"]) - len(kept)
        content["annotations"] = kept
    warn_suspects(path, suspects, training, level)
    content["suspect_ids"] = dict(suspects)
    return content


def plain_annotation(annotation, images: dict[int, dict], categories: set[int], seen: set[int]) -> bool:
    """True (and the id marked as seen) when `annotation_suspects` would find nothing and change nothing: the common
    case, checked in one pass. Everything else, fatal or suspect, goes through `annotation_suspects`."""
    if type(annotation) is not dict:
        return False
    ann_id, image_id, bbox = annotation.get("id"), annotation.get("image_id"), annotation.get("bbox")
    if not (type(ann_id) is int and type(image_id) is int and type(annotation.get("category_id")) is int
            and ann_id not in seen and annotation["category_id"] in categories and "area" in annotation
            and "iscrowd" in annotation and plain_box(bbox)):
        return False
    image = images.get(image_id)
    if image is None or bbox[0] < 0 or bbox[1] < 0 or bbox[0] + bbox[2] > image["width"] or \
            bbox[1] + bbox[3] > image["height"]:
        return False
    if "segmentation" in annotation:
        segmentation = annotation["segmentation"]
        if type(segmentation) is list:
            if not all(plain_numbers(polygon) and len(polygon) >= 6 for polygon in segmentation):
                return False
        elif not (type(segmentation) is dict and "counts" in segmentation and type(segmentation.get("size")) is list
                  and segmentation["size"] == [image["height"], image["width"]]):
            return False
    seen.add(ann_id)
    return True


def annotation_suspects(annotation, position: int, images: dict[int, dict], categories: set[int], seen: set[int],
                        path: Path, segm: bool) -> list[str]:
    """The kinds of suspect problems of one annotation (raising on fatal ones); completes `area` and `iscrowd` and
    drops polygons of fewer than 3 points in place."""
    check_fields(annotation, {"id": (int,), "image_id": (int,), "category_id": (int,)}, "annotation", position, path)
    name = f"annotation id {annotation['id']}"
    check_box(annotation.get("bbox"), name, path)
    image = images.get(annotation["image_id"])
    kinds = [box_suspect(annotation["bbox"], image)]
    if "segmentation" in annotation:
        kind = segmentation_suspect(annotation["segmentation"], image, name, path)
        if kind == "rle_size" and segm:
            raise UserError(f"{path}: {name}: its RLE is {annotation['segmentation']['size']} but image "
                            f"{annotation['image_id']} is [{image['height']}, {image['width']}]; masks of "
                            f"different sizes cannot be compared: fix the file or evaluate --iou-types bbox")
        if kind == "short_polygon":
            annotation["segmentation"] = drop_short_polygons(annotation["segmentation"], image)
            kind = "short_polygon" if isinstance(annotation["segmentation"], list) and annotation["segmentation"] \
                else "no_polygon"
        kinds.append(kind)
    kinds += ["missing_image" if image is None else None,
              "unknown_category" if annotation["category_id"] not in categories else None,
              "duplicate_id" if annotation["id"] in seen else None]
    seen.add(annotation["id"])
    if "area" not in annotation:
        kinds.append("missing_area")
        annotation["area"] = derived_area(annotation, image)
    if "iscrowd" not in annotation:
        kinds.append("missing_iscrowd")
        annotation["iscrowd"] = 0
    return [kind for kind in kinds if kind]


def drop_short_polygons(polygons: list, image: dict | None) -> list | dict:
    """The polygons of 3 points or more; when none is left, an empty mask of the image's size (pycocotools cannot
    decode an empty polygon list)."""
    kept = [p for p in polygons if len(p) >= 6]
    if kept or image is None:
        return kept
    empty = mask_util.encode(np.zeros((image["height"], image["width"]), dtype=np.uint8, order="F"))
    return {"size": empty["size"], "counts": empty["counts"].decode()}


def derived_area(annotation: dict, image: dict | None) -> float:
    """The mask's area when it can be decoded, else the box's (what pycocotools' loadRes and detectron2 use)."""
    segmentation = annotation.get("segmentation")
    if image and isinstance(segmentation, list) and segmentation and all(len(p) >= 6 for p in segmentation):
        return float(mask_util.area(mask_util.merge(mask_util.frPyObjects(segmentation, image["height"],
                                                                           image["width"]))))
    if image and isinstance(segmentation, dict):
        rle = segmentation if isinstance(segmentation["counts"], str) else mask_util.frPyObjects(
            segmentation, *segmentation["size"])
        return float(mask_util.area(rle))
    width, height = annotation["bbox"][2:]
    return float(width * height) if math.isfinite(width * height) else 0.0


def plain_result(result, image_ids: set[int], category_ids: set[int], segm: bool) -> bool:
    """True when `read_results` would neither raise nor count anything for `result`: the common case, checked in one
    pass. Everything else goes the long way, which names the problem."""
    if not (type(result) is dict and type(result.get("image_id")) is int and type(result.get("category_id")) is int
            and type(result.get("score")) in NUMBER_TYPES and result["image_id"] in image_ids
            and result["category_id"] in category_ids):
        return False
    if segm:
        segmentation = result.get("segmentation")
        if not (type(segmentation) is dict and "counts" in segmentation and type(segmentation.get("size")) is list):
            return False
        return "bbox" not in result or plain_box(result["bbox"])
    return plain_box(result.get("bbox"))


def read_results(results, path: Path, image_ids: set[int], category_ids: set[int], segm: bool) -> list[dict]:
    """COCO results (a list, or a file holding one), checked against the annotation file's image and category ids."""
    if isinstance(results, (str, Path)):
        path = Path(results)
        results = read_json(path, list, "COCO results file (a list of detections)")
    if not isinstance(results, list):
        raise UserError(f"{path}: detections must be a list of COCO result dicts, got a {type(results).__name__}")
    suspects: dict[str, list] = defaultdict(list)
    for position, result in enumerate(results):
        if plain_result(result, image_ids, category_ids, segm):
            continue
        check_fields(result, {"image_id": (int,), "category_id": (int,), "score": (int, float)}, "detection",
                     position, path)
        name = f"detection at position {position} (image id {result['image_id']})"
        if result["image_id"] not in image_ids:
            raise UserError(f"{path}: {name}: image id {result['image_id']} is not in the annotation file; "
                            f"evaluate the results against the annotation file they were made for")
        if segm:
            if "segmentation" not in result:
                raise UserError(f"{path}: {name}: iou type 'segm' needs a 'segmentation' (RLE) in every detection; "
                                f"evaluate with --iou-types bbox or give the model's masks")
            segmentation_suspect(result["segmentation"], None, name, path)
        if "bbox" in result or not segm:
            check_box(result.get("bbox"), name, path)
            kind = box_suspect(result["bbox"], None)
            if kind:
                suspects[f"detections with {SUSPECTS[kind][0]}"].append(position)
        if result["category_id"] not in category_ids:
            suspects["detections of unknown category ids"].append(position)
    for found, positions in suspects.items():
        warn_counted(path, found, positions, "kept, as pycocotools does", label="positions")
    return results
