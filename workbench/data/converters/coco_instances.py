"""The COCO instances dataset every converter builds, and what they share: reading an image's size from its header,
finding the image files, masks to RLE or polygons, the seeded train/val split and the atomic write.

Categories get ids 1..K in the order of the class list. Images without instances are kept (empty images). A
converter reads and checks everything before anything is written, so bad input leaves no file behind.
"""
import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_util

from workbench.data.classification import IMAGE_EXTENSIONS
from workbench.errors import MissingFileError, UserError

EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
CONTOUR_UPSAMPLING = 2  # contours traced on a 2x mask run a quarter pixel inside the edges: rounded onto them


def image_size(path: Path) -> tuple[int, int]:
    """The (width, height) of the image at `path` as the datasets load it (EXIF orientation applied), read from
    the file's header without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(EXIF_ORIENTATION) in TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except FileNotFoundError as error:
        raise MissingFileError(f"image not found: {path}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path}: cannot read the image header ({error}); expected an image file") from error
    return width, height


def find_image_files(root: Path) -> list[Path]:
    """The image files under `root` (by extension, subfolders included), sorted, as paths relative to `root`."""
    if not root.is_dir():
        raise MissingFileError(f"image folder not found: {root}")
    return sorted(path.relative_to(root) for path in root.rglob("*")
                  if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS)


def mask_polygons(mask: np.ndarray) -> tuple[list[list[float]], bool]:
    """The polygons [x1, y1, x2, y2, ...] of a binary mask's outer contours, along the pixels' edges (integer
    corners), and whether the mask has holes (which COCO polygons cannot hold: pycocotools fills them). Without holes,
    the polygons rasterise back to the mask exactly, and their extent is the mask's box."""
    upsampled = np.kron(mask.astype(np.uint8), np.ones((CONTOUR_UPSAMPLING, CONTOUR_UPSAMPLING), np.uint8))
    contours, hierarchy = cv2.findContours(upsampled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer = [c for c, links in zip(contours, hierarchy[0]) if links[3] < 0] if contours else []
    polygons = []
    for contour in outer:
        corners = np.round((contour.reshape(-1, 2) + 0.5) / CONTOUR_UPSAMPLING)  # x + 0.25 -> x, x + 0.75 -> x + 1
        corners = corners[np.any(corners != np.roll(corners, 1, axis=0), axis=1)]
        if len(corners) >= 3:
            polygons.append(corners.ravel().tolist())
    return polygons, len(outer) < len(contours)


def polygons_rle(polygons: list[list[float]], height: int, width: int) -> dict:
    """The RLE of the union of `polygons` as pycocotools rasterises them."""
    return mask_util.merge(mask_util.frPyObjects(polygons, height, width))


def read_class_names(values: list[str]) -> list[str]:
    """Class names given as names, or as one file: a YAML file with a `names:` list or {index: name} dict (YOLO's
    data.yaml), or a text file with one name per line."""
    if len(values) != 1 or not Path(values[0]).is_file():
        return list(values)
    path = Path(values[0])
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            names = (yaml.safe_load(path.read_text()) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as error:
            raise UserError(f"{path}: not a YAML mapping with 'names' ({error})") from error
        if isinstance(names, dict) and sorted(names) == list(range(len(names))):
            names = [names[index] for index in range(len(names))]
        if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
            raise UserError(f"{path}: 'names' must be a list of class names or a dict {{0: name, 1: name, ...}}, "
                            f"got {names!r:.80}")
        return names
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class CocoInstances:
    """A COCO instances dataset being built, with what the conversion skipped or changed and why.

    Args:
        class_names: the categories, ids 1..K in this order.
    """

    def __init__(self, class_names: list[str]):
        duplicates = sorted(name for name, count in Counter(class_names).items() if count > 1)
        if duplicates or not class_names:
            raise UserError(f"class names must be distinct and at least one, got {class_names}")
        self.categories = [{"id": index + 1, "name": name} for index, name in enumerate(class_names)]
        self.category_ids = {name: index + 1 for index, name in enumerate(class_names)}
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.notes: Counter = Counter()

    def category_id(self, name: str, where: str) -> int:
        """The id of class `name`; `where` names the file (and object) in the error when it is not a known class."""
        if name not in self.category_ids:
            raise UserError(f"{where}: class {name!r} is not in the class list ({', '.join(self.category_ids)}); "
                            f"expected one of those, or give the classes with --classes")
        return self.category_ids[name]

    def add_image(self, file_name: str, width: int, height: int) -> int:
        """Adds an image entry; returns its id."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        return image_id

    def _add(self, image_id: int, category_id: int, bbox: list[float], area: float, iscrowd: int,
             segmentation=None) -> None:
        annotation = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": category_id,
                      "bbox": [float(v) for v in bbox], "area": float(area), "iscrowd": iscrowd}
        if segmentation is not None:
            annotation["segmentation"] = segmentation
        self.annotations.append(annotation)

    def add_mask(self, image_id: int, category_id: int, mask: np.ndarray, iscrowd: int = 0,
                 polygons: bool = False) -> None:
        """Adds an instance from its binary mask [H, W]: segmentation as an RLE, box and area from it; or, when asked,
        as polygons along the pixel edges (the mask's box and area, but holes filled, counted). Crowd regions stay
        RLEs, as in COCO."""
        if polygons and not iscrowd:
            outlines, has_holes = mask_polygons(mask)
            self.note("masks with holes: filled in their polygons", int(has_holes))
            self.add_polygons(image_id, category_id, outlines)
            return
        rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
        segmentation = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
        self._add(image_id, category_id, mask_util.toBbox(rle), mask_util.area(rle), iscrowd, segmentation)

    def add_polygons(self, image_id: int, category_id: int, polygons: list[list[float]]) -> None:
        """Adds an instance of one or more polygons [x1, y1, ...] in pixels: box from their points, area as
        pycocotools rasterises them."""
        image = self.images[image_id - 1]
        points = np.concatenate([np.reshape(polygon, (-1, 2)) for polygon in polygons])
        low, high = points.min(axis=0), points.max(axis=0)
        area = mask_util.area(polygons_rle(polygons, image["height"], image["width"]))
        self._add(image_id, category_id, [*low, *(high - low)], area, 0, [list(map(float, p)) for p in polygons])

    def add_box(self, image_id: int, category_id: int, bbox: list[float], iscrowd: int = 0) -> None:
        """Adds a box-only instance [x, y, w, h] (no segmentation); its area is the box's."""
        self._add(image_id, category_id, bbox, bbox[2] * bbox[3], iscrowd)

    def note(self, what: str, count: int = 1) -> None:
        """Counts something skipped or changed, for the summary (e.g. "difficult objects: skipped")."""
        self.notes[what] += count

    def dataset(self, image_ids: set[int] | None = None) -> dict:
        """The COCO instances dict, of the images `image_ids` (default: all) and their annotations."""
        if image_ids is None:
            return {"images": self.images, "annotations": self.annotations, "categories": self.categories}
        return {"images": [image for image in self.images if image["id"] in image_ids],
                "annotations": [a for a in self.annotations if a["image_id"] in image_ids],
                "categories": self.categories}

    def summary(self) -> dict:
        """Images (and how many have no instance), instances per category (crowd regions apart), crowd regions, and
        the notes (what was skipped or changed, counted)."""
        names = {category["id"]: category["name"] for category in self.categories}
        per_category = Counter(names[a["category_id"]] for a in self.annotations if not a["iscrowd"])
        return {"images": len(self.images), "empty_images": len(self.images) - len({a["image_id"] for a in
                                                                                     self.annotations}),
                "instances": {name: per_category[name] for name in names.values()},
                "crowd": sum(a["iscrowd"] for a in self.annotations),
                "notes": {what: count for what, count in self.notes.items() if count}}


def split_image_ids(image_ids: list[int], val_fraction: float, seed: int) -> dict[str, set[int]]:
    """A seeded random split of `image_ids` into "train" and "val", round(val_fraction * N) images in val."""
    if not 0 < val_fraction < 1:
        raise UserError(f"val fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    num_val = round(val_fraction * len(image_ids))
    if num_val in (0, len(image_ids)):
        raise UserError(f"val fraction {val_fraction} of {len(image_ids)} images leaves a split empty; expected a "
                        f"fraction that puts at least one image in train and one in val")
    order = np.random.default_rng(seed).permutation(len(image_ids))
    val = {image_ids[index] for index in order[:num_val]}
    return {"train": set(image_ids) - val, "val": val}


def output_files(output: Path, splits: list[str] | None) -> list[Path]:
    """Where the dataset goes: OUTPUT/instances_{split}.json per split; without splits, OUTPUT when it ends in .json,
    else OUTPUT/instances.json."""
    if splits:
        if output.suffix == ".json":
            raise UserError(f"--output {output}: a split writes instances_train.json and instances_val.json; "
                            f"expected a folder, not a .json file")
        return [output / f"instances_{split}.json" for split in splits]
    return [output if output.suffix == ".json" else output / "instances.json"]


def write_json_atomically(content: dict, path: Path) -> None:
    """Writes `content` to `path` through a temporary file and os.replace: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content))
    os.replace(temporary, path)


def write_instances(instances: CocoInstances, output: str | Path, val_fraction: float | None = None,
                    seed: int = 0) -> list[Path]:
    """Writes the dataset to `output` (see `output_files`), split into train and val when `val_fraction` is given;
    returns the files written."""
    if val_fraction is None:
        path, = output_files(Path(output), None)
        write_json_atomically(instances.dataset(), path)
        return [path]
    splits = split_image_ids([image["id"] for image in instances.images], val_fraction, seed)
    paths = output_files(Path(output), list(splits))
    for path, image_ids in zip(paths, splits.values()):
        write_json_atomically(instances.dataset(image_ids), path)
    return paths


def format_summary(summary: dict) -> str:
    """The summary of a conversion as lines of text: files written, images, instances per category, notes."""
    lines = [f"wrote {path}" for path in summary.get("files", [])]
    lines.append(f"{summary['images']} images ({summary['empty_images']} without instances), "
                 f"{sum(summary['instances'].values())} instances, {summary['crowd']} crowd regions")
    lines += [f"  {name}: {count}" for name, count in summary["instances"].items()]
    lines += [f"{count} {what}" for what, count in summary["notes"].items()]
    return "\n".join(lines)
