"""Reading COCO annotation and result files: what cannot be read past is a `UserError` naming the file and the id;
what can (suspect entries) is counted, one warning per kind with the first ids.

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
    """Why a well-typed [x, y, w, h] box is suspect, or None."""
    if not all(math.isfinite(v) for v in bbox):
        return "NaN or infinite boxes"
    if bbox[2] < 0 or bbox[3] < 0:
        return "boxes of negative width or height"
    if image and (bbox[0] < 0 or bbox[1] < 0 or bbox[0] + bbox[2] > image["width"] or
                  bbox[1] + bbox[3] > image["height"]):
        return "boxes outside the image"
    return None


def segmentation_suspect(segmentation, image: dict | None, name: str, path: Path) -> str | None:
    """Why a segmentation is suspect (None if not); raises when it is neither polygons nor an RLE."""
    if isinstance(segmentation, list):
        if not all(isinstance(p, list) and all(is_number(v) for v in p) for p in segmentation):
            raise UserError(f"{path}: {name}: field 'segmentation' must be polygons (lists of numbers) or an RLE, "
                            f"got {segmentation!r:.80}")
        return "polygons with fewer than 3 points (dropped: they enclose nothing)" if any(
            len(p) < 6 for p in segmentation) else None
    if isinstance(segmentation, dict) and "counts" in segmentation and isinstance(segmentation.get("size"), list):
        if image and list(segmentation["size"]) != [image["height"], image["width"]]:
            return "RLEs of another size than their image"
        return None
    raise UserError(f"{path}: {name}: field 'segmentation' must be polygons or an RLE with 'counts' and 'size', "
                    f"got {segmentation!r:.80}")


def warn_suspects(path: Path, suspects: dict[str, list], action: str) -> None:
    """One counted warning per kind of suspect entry, with the first ids."""
    for kind, ids in suspects.items():
        shown = ", ".join(map(str, ids[:SHOWN_IDS])) + (", ..." if len(ids) > SHOWN_IDS else "")
        logger.warning("%s: %d %s (ids %s); %s", path, len(ids), kind, shown, action)


def read_instances(path: str | Path) -> dict:
    """The parsed COCO instances file at `path`, with its three sections present as lists."""
    content = read_json(path, dict, "COCO annotation file")
    for section in SECTIONS:
        if not isinstance(content.get(section), list):
            raise UserError(f"{path}: missing or non-list section {section!r}; a COCO instances file has "
                            f"{', '.join(SECTIONS)}")
    return content


def read_annotation_file(path: str | Path, action: str = "kept, as pycocotools keeps them", segm: bool = False
                         ) -> dict:
    """A COCO instances file, checked; missing `area` / `iscrowd` filled in, polygons of fewer than 3 points dropped.
    Suspect annotations are kept and counted (`action` says what the caller does with them); returns the content
    with `suspect_ids` per kind. With `segm` (masks will be compared), an RLE of another size is fatal."""
    path = Path(path)
    content = read_instances(path)
    images, categories = {}, set()
    for position, image in enumerate(content["images"]):
        check_fields(image, {"id": (int,), "width": (int,), "height": (int,)}, "image", position, path)
        images[image["id"]] = image
    for position, category in enumerate(content["categories"]):
        check_fields(category, {"id": (int,), "name": (str,)}, "category", position, path)
        categories.add(category["id"])
    suspects: dict[str, list] = defaultdict(list)
    seen: set[int] = set()
    for position, annotation in enumerate(content["annotations"]):
        check_fields(annotation, {"id": (int,), "image_id": (int,), "category_id": (int,)}, "annotation", position,
                     path)
        name, annotation_id = f"annotation id {annotation['id']}", annotation["id"]
        check_box(annotation.get("bbox"), name, path)
        image = images.get(annotation["image_id"])
        problems = [box_suspect(annotation["bbox"], image)]
        if "segmentation" in annotation:
            problem = segmentation_suspect(annotation["segmentation"], image, name, path)
            if problem and problem.startswith("RLEs") and segm:
                raise UserError(f"{path}: {name}: its RLE is {annotation['segmentation']['size']} but image "
                                f"{annotation['image_id']} is [{image['height']}, {image['width']}]; masks of "
                                f"different sizes cannot be compared: fix the file or evaluate --iou-types bbox")
            if problem and problem.startswith("polygons"):
                annotation["segmentation"] = drop_short_polygons(annotation["segmentation"], image)
            problems.append(problem)
        problems += ["annotations on images missing from the file" if image is None else None,
                     "annotations of unknown category ids" if annotation["category_id"] not in categories else None,
                     "duplicate annotation ids" if annotation_id in seen else None]
        seen.add(annotation_id)
        for field, derived in (("area", "missing 'area' (derived from the mask or box)"),
                               ("iscrowd", "missing 'iscrowd' (taken as 0)")):
            if field not in annotation:
                problems.append(derived)
                annotation[field] = derived_area(annotation, image) if field == "area" else 0
        for problem in filter(None, problems):
            suspects[problem].append(annotation_id)
    warn_suspects(path, suspects, action)
    content["suspect_ids"] = dict(suspects)
    return content


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


def read_results(results, path: Path, image_ids: set[int], category_ids: set[int], segm: bool) -> list[dict]:
    """COCO results (a list, or a file holding one), checked against the annotation file's image and category ids."""
    if isinstance(results, (str, Path)):
        path = Path(results)
        results = read_json(path, list, "COCO results file (a list of detections)")
    if not isinstance(results, list):
        raise UserError(f"{path}: detections must be a list of COCO result dicts, got a {type(results).__name__}")
    suspects: dict[str, list] = defaultdict(list)
    for position, result in enumerate(results):
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
            problem = box_suspect(result["bbox"], None)
            if problem:
                suspects[problem].append(position)
        if result["category_id"] not in category_ids:
            suspects["detections of unknown category ids"].append(position)
    warn_suspects(path, {f"{kind} (positions)": ids for kind, ids in suspects.items()}, "kept, as pycocotools does")
    return results
