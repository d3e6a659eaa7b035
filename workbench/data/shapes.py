"""Generate the synthetic "shapes" detection dataset (circles, squares, triangles) in COCO instances format.

Each image shows 1-4 flat-coloured shapes on a textured background (a smooth colour gradient, faint stripes and
low-amplitude noise). Shapes are painted without anti-aliasing, so every annotation is exact: its RLE mask is the set
of pixels of the object that are painted and still visible after later objects occlude it, its bbox is tight around
that mask and its area is the mask's pixel count. Placements that would hide much of an earlier object are rejected,
so occlusion stays mild and the data can be learned to high AP in minutes on a CPU.

The same arguments always give byte-identical files: every image draws from its own generator seeded with
(seed, split, index).

Layout:
    OUT/train/000000.png ...           OUT/annotations/instances_train.json
    OUT/val/000000.png ...             OUT/annotations/instances_val.json

The command line is `tools/make_shapes.py`.
"""
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from backbones.old_paths import moved_names
from workbench.errors import UserError

CATEGORIES = [
    {"id": 1, "name": "circle", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
]
SPLITS = ("train", "val")
EXTENT_RANGE = (0.25, 0.5)  # an object's diameter as a fraction of the image side
MAX_PAIR_OVERLAP = 0.15  # a new object and an earlier one may share at most this fraction of the smaller one
MIN_KEPT_VISIBLE = 0.7  # a placement is rejected if an earlier object would keep less of itself visible
MIN_VISIBLE = 0.3  # objects less visible than this are left out of the annotations
MIN_CONTRAST = 110.0  # RGB distance between an object's colour and the background or objects it touches
PLACEMENT_ATTEMPTS = 40
COLOUR_CANDIDATES = 32
NOISE_STD = 3.0


def pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The x and y coordinates of the centres of a size x size grid of pixels."""
    coordinates = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(coordinates, coordinates)


def shape_outline(category: str, extent: float, angle: float) -> np.ndarray | float:
    """The radius of a circle, or the vertices [V, 2] (x, y) of a regular polygon rotated by `angle`, centred on the
    origin."""
    if category == "circle":
        return extent / 2
    if category == "square":
        directions = angle + np.pi / 4 + np.arange(4) * np.pi / 2
        circumradius = 0.4 * np.sqrt(2) * extent
    else:
        directions = angle + np.arange(3) * 2 * np.pi / 3
        circumradius = 0.6 * extent
    return circumradius * np.stack([np.cos(directions), np.sin(directions)], axis=1)


def outline_bounds(outline: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) minimum and maximum offsets of the shape from its centre."""
    if np.isscalar(outline):
        return np.full(2, -outline), np.full(2, outline)
    return outline.min(axis=0), outline.max(axis=0)


def rasterise(outline: np.ndarray | float, centre: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The bool mask [H, W] of the pixels whose centre lies inside the shape (no anti-aliasing); polygon vertices go
    counter-clockwise (increasing angle)."""
    low, high = outline_bounds(outline)
    x0, y0 = np.maximum(np.floor(centre + low).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(centre + high).astype(int), shape[::-1])
    xs = np.arange(x0, x1) + 0.5 - centre[0]
    ys = (np.arange(y0, y1) + 0.5 - centre[1])[:, None]
    if np.isscalar(outline):
        inside = xs * xs + ys * ys <= outline * outline
    else:
        inside = np.ones((len(ys), len(xs)), dtype=bool)
        for start, end in zip(outline, np.roll(outline, -1, axis=0)):
            edge = end - start
            inside &= edge[0] * (ys - start[1]) - edge[1] * (xs - start[0]) >= 0
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = inside
    return mask


def acceptable(mask: np.ndarray, full_masks: list[np.ndarray], visible_masks: list[np.ndarray]) -> bool:
    """Whether a new object's mask leaves every earlier object mostly visible."""
    area = mask.sum()
    for full, visible in zip(full_masks, visible_masks):
        earlier_area = full.sum()
        if (mask & full).sum() > MAX_PAIR_OVERLAP * min(area, earlier_area):
            return False
        if (visible & ~mask).sum() < MIN_KEPT_VISIBLE * earlier_area:
            return False
    return True


def place_object(rng: np.random.Generator, category: str, size: int, full_masks: list[np.ndarray],
                 visible_masks: list[np.ndarray]) -> np.ndarray | None:
    """The mask of a randomly sized, rotated and placed shape lying wholly inside the image, or None when no
    acceptable placement was found."""
    for _ in range(PLACEMENT_ATTEMPTS):
        extent = rng.uniform(*EXTENT_RANGE) * size
        outline = shape_outline(category, extent, rng.uniform(0, 2 * np.pi))
        low, high = outline_bounds(outline)
        centre = rng.uniform(-low, size - high)
        mask = rasterise(outline, centre, (size, size))
        if mask.any() and acceptable(mask, full_masks, visible_masks):
            return mask
    return None


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 [size, size, 3] image: a smooth gradient between two similar colours plus faint stripes."""
    xs, ys = pixel_centres(size)
    base = rng.uniform(40, 215, size=3)
    start, end = base + rng.uniform(-35, 35, size=3), base + rng.uniform(-35, 35, size=3)
    direction, stripe_angle = rng.uniform(0, 2 * np.pi, size=2)
    period, phase, stripe_amplitude = rng.uniform(6, 24), rng.uniform(0, 2 * np.pi), rng.uniform(0, 8)
    position = xs * np.float32(np.cos(direction) / size) + ys * np.float32(np.sin(direction) / size)
    position = (position - position.min()) / max(np.ptp(position), 1e-6)
    stripes = np.sin(xs * np.float32(2 * np.pi * np.cos(stripe_angle) / period)
                     + ys * np.float32(2 * np.pi * np.sin(stripe_angle) / period) + np.float32(phase))
    texture = np.float32(stripe_amplitude) * stripes
    return np.stack([texture + np.float32(a) + np.float32(b - a) * position for a, b in zip(start, end)], axis=2)


def contrasting_colour(rng: np.random.Generator, neighbours: np.ndarray) -> np.ndarray:
    """A random RGB colour at least MIN_CONTRAST away from every colour of `neighbours` [K, 3] (or the most distant
    of the candidates when none is)."""
    candidates = rng.integers(0, 256, size=(COLOUR_CANDIDATES, 3)).astype(np.float32)
    distances = np.linalg.norm(candidates[:, None] - neighbours[None], axis=2).min(axis=1)
    contrasting = np.flatnonzero(distances >= MIN_CONTRAST)
    return candidates[contrasting[0] if contrasting.size else distances.argmax()]


def draw_image(rng: np.random.Generator, size: int, min_objects: int, max_objects: int
               ) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One image and its objects.

    Returns:
        The uint8 [size, size, 3] image, and (category id, visible bool mask) of each object visible enough to be
        annotated, in painting order.
    """
    canvas = textured_background(rng, size)
    background_colours = canvas.reshape(-1, 3).copy()
    categories, full_masks, visible_masks, colours = [], [], [], []
    for _ in range(rng.integers(min_objects, max_objects + 1)):
        category = CATEGORIES[rng.integers(len(CATEGORIES))]
        mask = place_object(rng, category["name"], size, full_masks, visible_masks)
        if mask is None:
            continue
        touched = [colour for colour, full in zip(colours, full_masks) if (full & mask).any()]
        neighbours = np.vstack([background_colours[mask.ravel()].mean(axis=0, keepdims=True), *touched])
        colour = contrasting_colour(rng, neighbours)
        canvas[mask] = colour
        visible_masks = [visible & ~mask for visible in visible_masks]
        categories.append(category["id"])
        full_masks.append(mask)
        visible_masks.append(mask)
        colours.append(colour[None])
    canvas += NOISE_STD * rng.standard_normal(size=(size, size, 1), dtype=np.float32)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    objects = [(category, visible) for category, full, visible in zip(categories, full_masks, visible_masks)
               if visible.sum() >= MIN_VISIBLE * full.sum()]
    return image, objects


def annotation(mask: np.ndarray, category_id: int, image_id: int, annotation_id: int) -> dict:
    """The COCO annotation of one object's exact visible mask: compressed RLE, tight bbox, pixel area."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "id": annotation_id, "image_id": image_id, "category_id": category_id,
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        "area": int(mask.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
    }


def write_json_atomically(content: dict, path: Path) -> None:
    """Writes `content` to `path` through a temporary file, so that a reader never sees a partial file."""
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content))
    os.replace(temporary, path)


def make_split(out_dir: Path, split: str, num_images: int, seed: int, size: int, min_objects: int,
               max_objects: int) -> dict:
    """Writes one split's images and annotation file; returns the COCO dataset dict."""
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        pixels, objects = draw_image(rng, size, min_objects, max_objects)
        file_name = f"{index:06d}.png"
        Image.fromarray(pixels).save(image_dir / file_name, compress_level=1)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for category_id, mask in objects:
            annotations.append(annotation(mask, category_id, image_id, len(annotations) + 1))
    dataset = {"info": {"description": f"synthetic shapes, {split} split, seed {seed}", "version": "1.0"},
               "licenses": [], "images": images, "annotations": annotations, "categories": CATEGORIES}
    write_json_atomically(dataset, out_dir / "annotations" / f"instances_{split}.json")
    return dataset


def make_shapes(out_dir: str | Path, num_train: int, num_val: int, seed: int, size: int = 128, *,
                min_objects: int = 1, max_objects: int = 4) -> dict:
    """Writes the shapes dataset (both splits) under `out_dir`.

    Args:
        out_dir: the dataset root; `train/`, `val/` and `annotations/` are created in it.
        num_train: number of training images.
        num_val: number of validation images.
        seed: the dataset seed; the same arguments give byte-identical files.
        size: image side in pixels.
        min_objects: fewest objects painted per image.
        max_objects: most objects painted per image.

    Returns:
        A summary: the image folders and annotation files of both splits (`train_images`, `train_annotations`,
        `val_images`, `val_annotations`), `num_images` and `num_annotations` per split, and `categories`.
    """
    if num_train < 0 or num_val < 0:
        raise UserError(f"image counts must be >= 0, got num_train={num_train}, num_val={num_val}")
    if size < 16:
        raise UserError(f"size must be >= 16 pixels, got {size}")
    if not 1 <= min_objects <= max_objects:
        raise UserError(f"need 1 <= min_objects <= max_objects, got min_objects={min_objects}, "
                         f"max_objects={max_objects}")
    out_dir = Path(out_dir)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    summary: dict = {"num_images": {}, "num_annotations": {}, "categories": [c["name"] for c in CATEGORIES]}
    for split, count in zip(SPLITS, (num_train, num_val)):
        dataset = make_split(out_dir, split, count, seed, size, min_objects, max_objects)
        summary[f"{split}_images"] = out_dir / split
        summary[f"{split}_annotations"] = out_dir / "annotations" / f"instances_{split}.json"
        summary["num_images"][split] = len(dataset["images"])
        summary["num_annotations"][split] = len(dataset["annotations"])
    return summary


# The command line's entry moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"generate": ("workbench.cli.shapes", "make_shapes")})
