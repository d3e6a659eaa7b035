"""COCO instances (an annotation JSON and a folder of images) as a torch Dataset in torchvision's detection convention.

`dataset[i]` is `(image, target)`: the image a float tensor [3, H, W] in 0-1 RGB, the target a dict

    boxes     float32 [N, 4]  x1, y1, x2, y2 in absolute pixels
    labels    int64 [N]       contiguous 1..K (0 is the background); `label_to_cat_id` maps back to COCO ids
    masks     uint8 [N, H, W] only when `with_masks=True`
    image_id  int             the COCO image id
    area      float32 [N]     the annotation's area
    iscrowd   int64 [N]

The annotation file is checked when the dataset is created: a missing section, or an annotation with a bad bbox, an
unknown image or category, or a malformed segmentation raises ValueError naming the file, the annotation id and the
field. Boxes reaching out of the image are clipped to it; boxes under 1 pixel wide or high (after clipping) are dropped;
the counts are kept in `stats` and logged once. Evaluation should use the original JSON (not these targets).
"""
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from workbench.data.coco_files import read_instances
from workbench.data.detection_transforms import to_tensors
from workbench.data.images import load_rgb
from workbench.errors import UserError

logger = logging.getLogger(__name__)

MIN_POLYGON_COORDINATES = 6


def index_entries(entries: list, kind: str, fields: dict[str, type], path: Path) -> dict[int, dict]:
    """`entries` (images or categories) by id, after checking that each has `fields` of the given types."""
    by_id: dict[int, dict] = {}
    for position, entry in enumerate(entries):
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, int):
            raise UserError(f"{path}: {kind} at position {position} has no integer 'id'")
        for field, kind_of_value in fields.items():
            if not isinstance(entry.get(field), kind_of_value):
                raise UserError(f"{path}: {kind} id {entry_id}: field {field!r} must be a {kind_of_value.__name__}, "
                                 f"got {entry.get(field)!r}")
        if entry_id in by_id:
            raise UserError(f"{path}: {kind} id {entry_id} appears twice")
        by_id[entry_id] = entry
    return by_id


def check_image_sizes(images: dict[int, dict], path: Path) -> None:
    """Checks that every image's width and height are positive."""
    for image_id, image in images.items():
        if image["width"] <= 0 or image["height"] <= 0:
            raise UserError(f"{path}: image id {image_id}: fields 'width' and 'height' must be positive, "
                             f"got {image['width']}x{image['height']}")


def check_bbox(annotation: dict, path: Path) -> list[float]:
    """The annotation's [x, y, width, height], checked to be four finite numbers with width, height >= 0."""
    bbox = annotation.get("bbox")
    valid = (isinstance(bbox, list) and len(bbox) == 4
             and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
             and bbox[2] >= 0 and bbox[3] >= 0)
    if not valid:
        raise UserError(f"{path}: annotation id {annotation['id']}: field 'bbox' must be [x, y, width, height] "
                         f"(finite numbers, width and height >= 0), got {bbox!r}")
    return [float(v) for v in bbox]


def check_segmentation(annotation: dict, image: dict, path: Path) -> None:
    """Checks that the segmentation is a list of polygons or an RLE of the image's size."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        valid = all(isinstance(polygon, list) and all(isinstance(v, (int, float)) for v in polygon)
                    for polygon in segmentation)
        problem = "must be a list of polygons (lists of numbers)"
    elif isinstance(segmentation, dict):
        valid = "counts" in segmentation and list(segmentation.get("size", [])) == [image["height"], image["width"]]
        problem = f"must be an RLE with 'counts' and 'size' == [{image['height']}, {image['width']}] (the image's)"
    else:
        valid, problem = False, "must be polygons or an RLE"
    if not valid:
        raise UserError(f"{path}: annotation id {annotation['id']}: field 'segmentation' {problem}, "
                         f"got {str(segmentation)[:80]}")


def clip_box(bbox: list[float], width: int, height: int) -> tuple[np.ndarray, bool]:
    """The [x, y, w, h] box as x1, y1, x2, y2 clipped to the image, and whether clipping changed it."""
    x, y, w, h = bbox
    corners = np.array([x, y, x + w, y + h], dtype=np.float64)
    clipped = np.clip(corners, 0, [width, height, width, height])
    return clipped.astype(np.float32), bool((clipped != corners).any())


def decode_segmentation(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """The uint8 [H, W] mask of polygons (those with fewer than 3 points are ignored, as in detectron2), an
    uncompressed RLE or a compressed RLE."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= MIN_POLYGON_COORDINATES and len(p) % 2 == 0]
        if not polygons:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


class CocoDetection(torch.utils.data.Dataset):
    """A COCO instances dataset yielding `(image, target)` in torchvision's detection convention (module docstring).

    Attributes:
        image_ids: the COCO ids of the dataset's images, sorted; `dataset[i]` is image `image_ids[i]`.
        cat_ids: the COCO category ids, sorted; label `k` is category `cat_ids[k - 1]`.
        cat_id_to_label, label_to_cat_id: the mappings between COCO category ids and contiguous labels 1..K.
        class_names: category names by label, `class_names[0] == "__background__"`.
        stats: counts from loading: `clipped_boxes`, `dropped_boxes` (degenerate), `skipped_images` (no annotations,
            training only), `ignored_crowd` (crowd annotations left out in training).
    """

    def __init__(self, image_dir: str | Path, ann_file: str | Path, *, transforms: Callable | None = None,
                 with_masks: bool = True, train: bool = True, skip_empty: bool = True):
        """
        Args:
            image_dir: folder holding the images' `file_name`s.
            ann_file: COCO instances JSON.
            transforms: called as `transforms(image, target)` with the uint8 [H, W, 3] image and a target of numpy
                arrays (same keys as the output), returning the image tensor and tensor target;
                `det_transforms.build_transforms` makes one. None converts to tensors only.
            with_masks: decode segmentations into `masks`.
            train: drop crowd annotations from targets (the losses cannot ignore them) and skip images without
                annotations when `skip_empty`; when False, keep every image and keep crowd annotations (iscrowd=1).
            skip_empty: in training, skip images with no (non-crowd) annotation left.
        """
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.transforms = transforms if transforms is not None else to_tensors
        self.with_masks = with_masks
        content = read_instances(self.ann_file)
        self.images = index_entries(content["images"], "image", {"file_name": str, "width": int, "height": int},
                                    self.ann_file)
        check_image_sizes(self.images, self.ann_file)
        categories = index_entries(content["categories"], "category", {"name": str}, self.ann_file)
        self.cat_ids = sorted(categories)
        self.cat_id_to_label = {cat_id: label for label, cat_id in enumerate(self.cat_ids, start=1)}
        self.label_to_cat_id = {label: cat_id for cat_id, label in self.cat_id_to_label.items()}
        self.class_names = ["__background__"] + [categories[cat_id]["name"] for cat_id in self.cat_ids]
        self.stats = {"clipped_boxes": 0, "dropped_boxes": 0, "skipped_images": 0, "ignored_crowd": 0}
        self.instances = self._index_annotations(content["annotations"], train)
        keep_empty = not (train and skip_empty)
        self.image_ids = [i for i in sorted(self.images) if self.instances.get(i) or keep_empty]
        self.stats["skipped_images"] = len(self.images) - len(self.image_ids)
        self._log_stats()

    def _index_annotations(self, annotations: list, train: bool) -> dict[int, list[dict]]:
        """The kept annotations of each image id, each with its clipped `box` (x1, y1, x2, y2)."""
        instances: dict[int, list[dict]] = {}
        for position, annotation in enumerate(annotations):
            if not isinstance(annotation, dict) or not isinstance(annotation.get("id"), int):
                raise UserError(f"{self.ann_file}: annotation at position {position} has no integer 'id'")
            image = self._lookup(annotation, "image_id", self.images)
            self._lookup(annotation, "category_id", self.cat_id_to_label)
            bbox = check_bbox(annotation, self.ann_file)
            if self.with_masks:
                check_segmentation(annotation, image, self.ann_file)
            if train and annotation.get("iscrowd", 0):
                self.stats["ignored_crowd"] += 1
                continue
            box, clipped = clip_box(bbox, image["width"], image["height"])
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                self.stats["dropped_boxes"] += 1
                continue
            self.stats["clipped_boxes"] += clipped
            instances.setdefault(annotation["image_id"], []).append(dict(annotation, box=box))
        return instances

    def _lookup(self, annotation: dict, field: str, known: dict) -> dict | int:
        """The entry of `known` that the annotation's `field` refers to."""
        key = annotation.get(field)
        if not isinstance(key, int) or key not in known:
            raise UserError(f"{self.ann_file}: annotation id {annotation['id']}: field {field!r} = {key!r} "
                             f"matches no {field.removesuffix('_id')} of the file")
        return known[key]

    def _log_stats(self) -> None:
        stats = self.stats
        message = ("%s: %d of %d images (%d skipped without annotations), %d categories; %d boxes clipped to the "
                   "image, %d degenerate boxes dropped, %d crowd annotations ignored")
        level = logging.WARNING if stats["clipped_boxes"] or stats["dropped_boxes"] else logging.INFO
        logger.log(level, message, self.ann_file, len(self.image_ids), len(self.images), stats["skipped_images"],
                   len(self.cat_ids), stats["clipped_boxes"], stats["dropped_boxes"], stats["ignored_crowd"])

    def __len__(self) -> int:
        return len(self.image_ids)

    def get_height_and_width(self, index: int) -> tuple[int, int]:
        """The (height, width) of image `index`, from the annotation file (no decoding)."""
        image = self.images[self.image_ids[index]]
        return image["height"], image["width"]

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, in dataset order, from the annotation file."""
        return [self.images[i]["width"] / self.images[i]["height"] for i in self.image_ids]

    def load_image(self, index: int) -> np.ndarray:
        """The uint8 [H, W, 3] RGB image `index`, checked against the size the annotation file gives."""
        image_id = self.image_ids[index]
        entry = self.images[image_id]
        path = self.image_dir / entry["file_name"]
        pixels = np.asarray(load_rgb(path, f"image id {image_id}"))
        if pixels.shape[:2] != (entry["height"], entry["width"]):
            raise UserError(f"image id {image_id} ({path}) is {pixels.shape[1]}x{pixels.shape[0]} pixels (after EXIF "
                             f"orientation) but {self.ann_file} says {entry['width']}x{entry['height']}")
        return pixels

    def load_target(self, index: int) -> dict:
        """The target of image `index` as numpy arrays (and the int `image_id`), before transforms."""
        image_id = self.image_ids[index]
        entry = self.images[image_id]
        instances = self.instances.get(image_id, [])
        target = {
            "boxes": np.array([a["box"] for a in instances], dtype=np.float32).reshape(-1, 4),
            "labels": np.array([self.cat_id_to_label[a["category_id"]] for a in instances], dtype=np.int64),
            "image_id": image_id,
            "area": np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in instances], dtype=np.float32),
            "iscrowd": np.array([a.get("iscrowd", 0) for a in instances], dtype=np.int64),
        }
        if self.with_masks:
            masks = [decode_segmentation(a["segmentation"], entry["height"], entry["width"]) for a in instances]
            target["masks"] = np.stack(masks) if masks else np.zeros((0, entry["height"], entry["width"]), np.uint8)
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        return self.transforms(self.load_image(index), self.load_target(index))


def collate_fn(batch: list[tuple]) -> tuple[list, list]:
    """Batches (image, target) pairs as (list of images, list of targets): detection images differ in size."""
    images, targets = zip(*batch)
    return list(images), list(targets)
