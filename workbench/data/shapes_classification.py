"""Generate the synthetic "shapes" classification dataset: one shape per image, ten classes, as class folders.

Each image shows one flat-coloured shape (40-90% of the image side, rotated, anywhere inside the image) on the
textured background of the detection shapes (`workbench.data.shapes`). Small hexagons look like circles and
ellipses like rotated diamonds, so the task is learnable in minutes on a CPU but not trivial. An easier set, for
experiments that must show learning within minutes (tools/degradation.py), takes a plain background of one random
colour (`background="plain"`) and larger shapes (`extent`, e.g. (0.6, 0.9)). Classes are balanced
(image `i` is of class `i % 10`) and the same arguments always give byte-identical files: every image draws from its
own generator seeded with (seed, split, index). `classes.txt` is written last and marks a complete dataset.

Layout (ImageNet-style class folders, read by workbench.data.classification.ImageFolder):
    OUT/train/circle/000000.png ...   OUT/val/circle/000000.png ...   OUT/classes.txt

The command line is `tools/make_shapes_cls.py`.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from backbones.old_paths import moved_names
from workbench.data.shapes import NOISE_STD, SPLITS, contrasting_colour, textured_background
from workbench.errors import UserError

CLASSES = ("circle", "ellipse", "square", "diamond", "triangle", "pentagon", "hexagon", "star", "cross", "ring")
EXTENT_RANGE = (0.4, 0.9)  # the shape's diameter as a fraction of the image side
BACKGROUNDS = ("textured", "plain")
CIRCLE_VERTICES = 48
MARKER = "classes.txt"


def rotation_matrix(angle: float) -> np.ndarray:
    """The 2x2 matrix rotating (x, y) points by `angle`."""
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def regular_polygon(vertices: int, radius: float, angle: float, squash: float = 1.0) -> np.ndarray:
    """[V, 2] vertices on a circle (an ellipse when `squash` < 1) of `radius`, rotated by `angle`."""
    directions = np.arange(vertices) * 2 * np.pi / vertices
    points = np.stack([np.cos(directions), squash * np.sin(directions)], axis=1) * radius
    return points @ rotation_matrix(angle).T


def outlines(name: str, radius: float, angle: float) -> list[tuple[np.ndarray, bool]]:
    """The polygons of a shape centred on the origin, each with whether it is filled (True) or cut out (False)."""
    if name == "circle":
        return [(regular_polygon(CIRCLE_VERTICES, radius, 0.0), True)]
    if name == "ellipse":
        return [(regular_polygon(CIRCLE_VERTICES, radius, angle, squash=0.55), True)]
    if name == "diamond":
        return [(regular_polygon(4, radius, angle, squash=0.6), True)]
    if name == "ring":
        return [(regular_polygon(CIRCLE_VERTICES, radius, 0.0), True),
                (regular_polygon(CIRCLE_VERTICES, 0.55 * radius, 0.0), False)]
    if name == "star":
        points = regular_polygon(10, radius, angle)
        points[1::2] *= 0.45
        return [(points, True)]
    if name == "cross":
        a, w = radius, 0.3 * radius
        points = np.array([(a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w), (-w, -a),
                           (w, -a), (w, -w)])
        return [(points @ rotation_matrix(angle).T, True)]
    sides = {"square": 4, "triangle": 3, "pentagon": 5, "hexagon": 6}[name]
    return [(regular_polygon(sides, radius, angle), True)]


def shape_mask(name: str, size: int, rng: np.random.Generator, extent: tuple[float, float] = EXTENT_RANGE
               ) -> np.ndarray:
    """The bool [size, size] mask of a randomly sized (diameter: a fraction in `extent` of the image side), rotated
    and placed shape lying inside the image."""
    radius = rng.uniform(*extent) * size / 2
    polygons = outlines(name, radius, rng.uniform(0, 2 * np.pi))
    extent = np.abs(np.concatenate([points for points, _ in polygons])).max(axis=0)
    centre = rng.uniform(extent, size - extent)
    canvas = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for points, filled in polygons:
        draw.polygon([tuple(p) for p in points + centre], fill=1 if filled else 0)
    return np.array(canvas, dtype=bool)


def draw_background(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A float32 [size, size, 3] background: the detection shapes' texture, or one random colour ("plain")."""
    if kind == "plain":
        return np.broadcast_to(rng.uniform(40, 215, size=3).astype(np.float32), (size, size, 3)).copy()
    return textured_background(rng, size)


def draw_image(rng: np.random.Generator, name: str, size: int, background: str = "textured",
               extent: tuple[float, float] = EXTENT_RANGE) -> np.ndarray:
    """One uint8 [size, size, 3] image of shape `name`."""
    canvas = draw_background(rng, size, background)
    mask = shape_mask(name, size, rng, extent)
    canvas[mask] = contrasting_colour(rng, canvas[mask].mean(axis=0, keepdims=True))
    canvas += NOISE_STD * rng.standard_normal(size=(size, size, 1), dtype=np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def make_shapes_cls(root: str | Path, num_train: int, num_val: int, seed: int = 0, size: int = 32,
                    background: str = "textured", extent: tuple[float, float] = EXTENT_RANGE) -> Path:
    """Writes both splits under `root` as class folders and returns `root`.

    Args:
        root: the dataset root; `train/`, `val/` and `classes.txt` are created in it.
        num_train: number of training images.
        num_val: number of validation images.
        seed: the dataset seed; the same arguments give byte-identical files.
        size: image side in pixels.
        background: "textured" (the default set) or "plain" (one colour per image: an easier set).
        extent: the range of the shape's diameter as a fraction of the image side; larger shapes are easier.
    """
    if num_train < len(CLASSES) or num_val < len(CLASSES):
        raise UserError(f"need at least {len(CLASSES)} images per split (one per class), got num_train={num_train}, "
                         f"num_val={num_val}")
    if size < 16:
        raise UserError(f"size must be >= 16 pixels, got {size}")
    if background not in BACKGROUNDS:
        raise UserError(f"background={background!r} is not supported; choose one of {', '.join(BACKGROUNDS)}")
    if len(extent) != 2 or not 0 < extent[0] <= extent[1] <= 1:
        raise UserError(f"extent={list(extent)!r} is impossible; expected [low, high] with 0 < low <= high <= 1")
    root = Path(root)
    for split, count in zip(SPLITS, (num_train, num_val)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = CLASSES[index % len(CLASSES)]
            pixels = draw_image(np.random.default_rng([seed, SPLITS.index(split), index]), name, size, background,
                                tuple(extent))
            Image.fromarray(pixels).save(root / split / name / f"{index:06d}.png", compress_level=1)
    (root / MARKER).write_text("\n".join(CLASSES) + "\n")
    return root


# The command line's entry moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"generate": ("workbench.cli.shapes", "make_shapes_cls")})
