"""Instance-mask folders to COCO: one integer-id PNG per image, each instance with its own id, 0 the background.

Two ways to give the classes:
- one class for every instance (`class_name`): Penn-Fudan's `PedMasks/FudanPed00001_mask.png`, ids 1..N;
- a class map {class id: name} with Cityscapes' id rule (`*_instanceIds.png`): an id >= `id_divisor` is instance
  `id % id_divisor` of class `id // id_divisor`; an id below it covers a whole class ("stuff", or a crowd of a thing
  class) and becomes a crowd region of that class when the map names it, and is skipped (counted) when it does not.
  An instance id whose class the map does not name is an error.

Masks become RLEs (exact, holes included) or, when asked, polygons (exact too, but holes are filled: COCO polygons
cannot hold them; crowd regions stay RLEs, as in COCO).
"""
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from workbench.data.converters.coco_instances import CocoInstances, find_image_files, image_size
from workbench.errors import MissingFileError, UserError

CITYSCAPES_ID_DIVISOR = 1000


ID_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")  # PIL modes of single-channel integer images


def read_id_mask(path: Path) -> np.ndarray:
    """The integer ids [H, W] of a single-channel mask PNG (8-bit, 16-bit or palette indices)."""
    try:
        with Image.open(path) as image:
            mode, ids = image.mode, np.asarray(image).astype(np.int64)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path}: cannot read the mask ({error}); expected an integer-id PNG") from error
    if mode not in ID_MODES:
        raise UserError(f"{path}: mask of mode {mode}; expected a single-channel integer-id image (8-bit, 16-bit or "
                        f"palette)")
    return ids


def mask_path(masks: Path, image: Path, mask_pattern: str, image_suffix: str) -> Path:
    """The mask of `image` (relative to the image folder): `mask_pattern` with `{stem}` (the image's name without
    extension and without `image_suffix`) in the same subfolder under `masks`."""
    stem = image.stem.removesuffix(image_suffix) if image_suffix else image.stem
    return masks / image.parent / mask_pattern.format(stem=stem)


def instance_classes(ids: np.ndarray, path: Path, class_map: dict[int, str], id_divisor: int,
                     instances: CocoInstances) -> list[tuple[int, str, int]]:
    """The (id, class name, iscrowd) of each non-zero id of a mask under the class map's id rule."""
    found = []
    for value in np.unique(ids):
        value = int(value)
        if value == 0:
            continue
        if value < id_divisor:
            if value in class_map:
                found.append((value, class_map[value], 1))
            else:
                instances.note(f"mask ids below {id_divisor} (stuff) without a class: skipped")
            continue
        class_id = value // id_divisor
        if class_id not in class_map:
            raise UserError(f"{path}: instance id {value} is of class id {class_id} (id // {id_divisor}), which the "
                            f"class map does not name; expected class ids {sorted(class_map)}")
        found.append((value, class_map[class_id], 0))
    return found


def convert_instance_masks(images: str | Path, masks: str | Path, mask_pattern: str = "{stem}.png", *,
                           class_name: str | None = None, class_map: dict[int, str] | None = None,
                           id_divisor: int = CITYSCAPES_ID_DIVISOR, image_suffix: str = "",
                           polygons: bool = False) -> CocoInstances:
    """Converts a folder of images and their instance-id masks.

    Args:
        images: the image folder (file names in the output are relative to it).
        masks: the mask folder, subfolders as under `images`.
        mask_pattern: a mask's file name, `{stem}` standing for its image's (e.g. "{stem}_mask.png").
        class_name: the class of every instance (every non-zero id is one instance).
        class_map: instead of `class_name`, {class id: name} under the id rule of the module docstring.
        id_divisor: the id rule's divisor (Cityscapes: 1000).
        image_suffix: the end of an image's stem that its mask's name lacks (Cityscapes: "_leftImg8bit").
        polygons: write polygons instead of RLEs.
    """
    if (class_name is None) == (class_map is None):
        raise UserError("give either one class name for every instance or a class map {class id: name}, not both")
    names = [class_name] if class_name is not None else list(dict.fromkeys(class_map[k] for k in sorted(class_map)))
    instances = CocoInstances(names)
    images, masks = Path(images), Path(masks)
    for image in find_image_files(images):
        width, height = image_size(images / image)
        path = mask_path(masks, image, mask_pattern, image_suffix)
        if not path.is_file():
            raise MissingFileError(f"{path}: no such mask for image {images / image}; expected every image to have "
                                   f"its mask, named by the mask pattern {mask_pattern!r}")
        ids = read_id_mask(path)
        if ids.shape != (height, width):
            raise UserError(f"{path}: mask is {ids.shape[1]}x{ids.shape[0]} but its image {images / image} is "
                            f"{width}x{height}; expected the same size")
        image_id = instances.add_image(image.as_posix(), width, height)
        found = ([(int(value), class_name, 0) for value in np.unique(ids) if value != 0] if class_map is None
                 else instance_classes(ids, path, class_map, id_divisor, instances))
        for value, name, iscrowd in found:
            instances.add_mask(image_id, instances.category_ids[name], ids == value, iscrowd, polygons)
    return instances
