"""Writers of the converter tests' inputs: tiny images and files in the formats the converters read."""
import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int) -> Path:
    """Writes a small RGB picture of `width` x `height` to `path` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def voc_xml(file_name: str, width: int, height: int, objects: list[tuple]) -> str:
    """A VOC annotation; objects are (name, xmin, ymin, xmax, ymax, difficult)."""
    boxes = "".join(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin>"
                    f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                    for name, x0, y0, x1, y1, difficult in objects)
    return (f"<annotation><folder>VOC</folder><filename>{file_name}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{boxes}</annotation>")


def shape(label: str, points: list, shape_type: str = "polygon", group_id: int | None = None) -> dict:
    """A LabelMe shape."""
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}}


def write_labelme(path: Path, image_path: str, shapes: list, width: int = 48, height: int = 32) -> None:
    """Writes a LabelMe file; `image_path` is relative to it, as LabelMe writes it."""
    path.write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path,
                                "imageData": None, "imageHeight": height, "imageWidth": width}))
