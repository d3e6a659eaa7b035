"""YOLO label files to COCO: one `.txt` per image (the labels folder mirrors the image folder, as Ultralytics'
`images/` and `labels/`), one instance per line, coordinates normalised to 0-1 by the image's width and height:
- detection: `class cx cy w h`, a box without mask;
- segmentation: `class x1 y1 x2 y2 ... xn yn`, a polygon of 3 points or more (box and area from the polygon).

An image without a label file is an empty image (YOLO's background images); a label file without an image is
skipped, counted. Image sizes come from the image headers.
A line of another number of values, a class index outside the class list or a coordinate outside 0-1 is an error
naming the file and line.
"""
import math
from pathlib import Path

from workbench.data.converters.coco_instances import CocoInstances, find_image_files, image_size
from workbench.errors import MissingFileError, UserError

BOX_VALUES = 4
ROUND_OFF = 1e-6  # a coordinate this far outside 0-1 is taken as 0 or 1 (float printing), not as an error


def parse_line(line: str, path: Path, number: int, num_classes: int) -> tuple[int, list[float]]:
    """The class index and the normalised coordinates of one label line."""
    where = f"{path}:{number}"
    values = line.split()
    try:
        numbers = [float(value) for value in values]
    except ValueError as error:
        raise UserError(f"{where}: not numbers ({line.strip()!r:.80}); expected 'class cx cy w h' or "
                        f"'class x1 y1 x2 y2 x3 y3 ...'") from error
    count = len(numbers) - 1
    if count != BOX_VALUES and (count < 6 or count % 2):
        raise UserError(f"{where}: {len(numbers)} numbers; expected 5 (class cx cy w h) or 1 + an even number >= 6 "
                        f"(class and 3 or more x y points)")
    index = numbers[0]
    if not (index.is_integer() and 0 <= index < num_classes):
        raise UserError(f"{where}: class {values[0]} is not an index into the {num_classes} class names; expected "
                        f"an integer from 0 to {num_classes - 1}")
    coordinates = numbers[1:]
    if not all(math.isfinite(v) and -ROUND_OFF <= v <= 1 + ROUND_OFF for v in coordinates):
        raise UserError(f"{where}: coordinates outside 0-1 ({line.strip():.80}); expected values normalised by the "
                        f"image's width and height")
    return int(index), [min(max(v, 0.0), 1.0) for v in coordinates]


def yolo_box(coordinates: list[float], width: int, height: int, where: str) -> list[float]:
    """The COCO [x, y, w, h] in pixels of a normalised `cx cy w h`, which must lie inside the image."""
    cx, cy, w, h = coordinates
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if min(x0, y0) < -ROUND_OFF or max(x1, y1) > 1 + ROUND_OFF:
        raise UserError(f"{where}: box (cx {cx:g}, cy {cy:g}, w {w:g}, h {h:g}) reaches outside the image; expected "
                        f"cx - w/2 >= 0, cx + w/2 <= 1 and the same for y")
    x0, y0, x1, y1 = max(x0, 0.0) * width, max(y0, 0.0) * height, min(x1, 1.0) * width, min(y1, 1.0) * height
    return [x0, y0, x1 - x0, y1 - y0]


def read_lines(path: Path) -> list[str]:
    """The lines of a label file."""
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text file ({error}); expected YOLO label lines") from error


def convert_yolo(images: str | Path, labels: str | Path, class_names: list[str]) -> CocoInstances:
    """Converts a folder of images and their YOLO label files.

    Args:
        images: the image folder (file names in the output are relative to it).
        labels: the label folder: `labels/a/b.txt` for `images/a/b.jpg`.
        class_names: the names of class indices 0, 1, ... (data.yaml's `names`).
    """
    images, labels = Path(images), Path(labels)
    if not labels.is_dir():
        raise MissingFileError(f"label folder not found: {labels}")
    instances = CocoInstances(list(class_names))
    unused = set(labels.rglob("*.txt"))
    for image in find_image_files(images):
        width, height = image_size(images / image)
        image_id = instances.add_image(image.as_posix(), width, height)
        path = labels / image.with_suffix(".txt")
        unused.discard(path)
        if not path.is_file():
            instances.note("images without a label file: kept as empty images")
            continue
        for number, line in enumerate(read_lines(path), start=1):
            if not line.strip():
                continue
            index, coordinates = parse_line(line, path, number, len(class_names))
            if len(coordinates) == BOX_VALUES:
                instances.add_box(image_id, index + 1, yolo_box(coordinates, width, height, f"{path}:{number}"))
            else:
                scale = [width, height] * (len(coordinates) // 2)
                instances.add_polygons(image_id, index + 1, [[v * s for v, s in zip(coordinates, scale)]])
    instances.note("label files without an image: skipped", len(unused))
    return instances
