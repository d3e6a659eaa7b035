"""LabelMe JSON to COCO: one JSON per image with `imagePath` (relative to the JSON file), `imageHeight`,
`imageWidth` and `shapes` of `label`, `points` ([[x, y], ...] in pixels), `shape_type` and `group_id`.

Regions: "polygon" (3 points or more), "rectangle" (two opposite corners) and "circle" (centre and a point on the
circle; written as a polygon of CIRCLE_VERTICES points). Shapes of the same label and `group_id` are one instance of
several polygons; shapes without `group_id` are one instance each. Other shape types (point, line, linestrip, mask)
are skipped, counted. LabelMe has no crowd flag (every instance has iscrowd=0) and its polygons cannot have holes.
Points a little outside the image (LabelMe lets one click there) are clipped to it, counted.
"""
import math
from pathlib import Path

import numpy as np

from workbench.data.converters.coco_instances import CocoInstances, image_size
from workbench.data.coco_files import read_json
from workbench.errors import MissingFileError, UserError

REGION_TYPES = ("polygon", "rectangle", "circle")
CIRCLE_VERTICES = 64


def shape_polygon(shape: dict, path: Path, where: str) -> np.ndarray:
    """The [N, 2] points of a region shape as a polygon."""
    try:
        points = np.asarray(shape.get("points"), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise UserError(f"{path}: {where}: 'points' must be a list of [x, y], got {shape.get('points')!r:.80}") \
            from error
    kind = shape.get("shape_type") or "polygon"
    needed = 3 if kind == "polygon" else 2
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < needed or not np.isfinite(points).all():
        raise UserError(f"{path}: {where}: a {kind} needs {'3 or more' if needed == 3 else 'two'} [x, y] points, "
                        f"got {shape.get('points')!r:.80}")
    if kind == "rectangle":
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind == "circle":
        radius = math.dist(points[0], points[1])
        angles = np.linspace(0, 2 * np.pi, CIRCLE_VERTICES, endpoint=False)
        return points[0] + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return points


def read_labelme(path: Path, images: Path) -> dict:
    """One LabelMe file, checked: its image (relative to `images`), size, and the shapes as (label, group_id,
    shape_type, shape)."""
    content = read_json(path, dict, "LabelMe file")
    for field, kind in (("imagePath", str), ("imageHeight", int), ("imageWidth", int), ("shapes", list)):
        if not isinstance(content.get(field), kind) or isinstance(content.get(field), bool):
            raise UserError(f"{path}: field {field!r} must be a {kind.__name__}, got {content.get(field)!r:.80}; "
                            f"expected a LabelMe JSON file")
    image = (path.parent / content["imagePath"]).resolve()
    if not image.is_file():
        raise MissingFileError(f"{path}: its image {image} (imagePath {content['imagePath']!r}) does not exist")
    if not image.is_relative_to(images.resolve()):
        raise UserError(f"{path}: its image {image} is not under the image folder {images}; expected images there")
    width, height = image_size(image)
    if (width, height) != (content["imageWidth"], content["imageHeight"]):
        raise UserError(f"{path}: imageWidth x imageHeight is {content['imageWidth']}x{content['imageHeight']} but "
                        f"image {image} is {width}x{height}; expected the image's size")
    for index, shape in enumerate(content["shapes"]):
        if not (isinstance(shape, dict) and isinstance(shape.get("label"), str)):
            raise UserError(f"{path}: shape {index + 1} must be an object with a 'label' string, got {shape!r:.80}")
    return {"file_name": image.relative_to(images.resolve()).as_posix(), "width": width, "height": height,
            "shapes": content["shapes"]}


def add_shapes(instances: CocoInstances, image_id: int, entry: dict, path: Path) -> None:
    """Adds the instances of one file's shapes: region shapes grouped by (label, group_id)."""
    groups: dict[tuple, list[list[float]]] = {}
    for index, shape in enumerate(entry["shapes"]):
        where = f"shape {index + 1} ({shape['label']!r})"
        kind = shape.get("shape_type") or "polygon"
        if kind not in REGION_TYPES:
            instances.note(f"shapes of type {kind}: skipped (not a region)")
            continue
        category_id = instances.category_id(shape["label"], f"{path}: {where}")
        polygon = shape_polygon(shape, path, where)
        clipped = np.clip(polygon, 0, [entry["width"], entry["height"]])
        instances.note("shapes with points outside the image: clipped", int((clipped != polygon).any()))
        group = shape.get("group_id")
        key = (category_id, group) if group is not None else (category_id, "shape", index)
        groups.setdefault(key, []).append(clipped.ravel().tolist())
    for (category_id, *_), polygons in groups.items():
        instances.add_polygons(image_id, category_id, polygons)


def convert_labelme(annotations: str | Path, images: str | Path | None = None,
                    classes: list[str] | None = None) -> CocoInstances:
    """Converts a folder of LabelMe JSON files.

    Args:
        annotations: the folder of JSON files (subfolders included).
        images: the image root that output file names are relative to (default: `annotations`, where LabelMe keeps
            the JSON files next to the images).
        classes: the class list; default: the labels found, sorted. A label outside a given list is an error.
    """
    annotations = Path(annotations)
    images = Path(images) if images is not None else annotations
    if not annotations.is_dir():
        raise MissingFileError(f"annotation folder not found: {annotations}")
    files = sorted(annotations.rglob("*.json"))
    if not files:
        raise MissingFileError(f"annotation folder {annotations} holds no .json files; expected LabelMe files")
    entries = [read_labelme(path, images) for path in files]
    regions = sorted({shape["label"] for entry in entries for shape in entry["shapes"]
                      if (shape.get("shape_type") or "polygon") in REGION_TYPES})
    if not (classes or regions):
        raise UserError(f"{annotations}: no polygon, rectangle or circle in any LabelMe file; expected some, or the "
                        f"class list given with --classes")
    instances = CocoInstances(list(classes) if classes else regions)
    for path, entry in zip(files, entries):
        image_id = instances.add_image(entry["file_name"], entry["width"], entry["height"])
        add_shapes(instances, image_id, entry, path)
    return instances
