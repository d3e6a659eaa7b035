"""COCO instances (an annotation JSON and a folder of images) as a torch Dataset in torchvision's detection convention.

`dataset[i]` is `(image, target)`: the image a float tensor [3, H, W] in 0-1 RGB, the target a dict

    boxes     float32 [N, 4]  x1, y1, x2, y2 in absolute pixels
    labels    int64 [N]       contiguous 1..K (0 is the background); `label_to_cat_id` maps back to COCO ids
    masks     uint8 [N, H, W] only when `with_masks=True`
    image_id  int             the COCO image id
    area      float32 [N]     the annotation's area
    iscrowd   int64 [N]

The annotation file is read by the validator that evaluation uses too (`coco_files.read_annotation_file`): fatal
problems raise a UserError naming the file and the id; suspect annotations are counted and left out of the targets
(boxes reaching out of the image are clipped instead). Boxes under 1 pixel wide or high after clipping are dropped; the
counts are kept in `stats` and logged once. Evaluation scores against the original JSON, not these targets.
"""
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from workbench.data.coco_files import check_fields, read_annotation_file
from workbench.data.detection_transforms import to_tensors
from workbench.data.images import ImageReadError, UnreadableImages, load_rgb
from workbench.errors import UserError

logger = logging.getLogger(__name__)


def clip_box(bbox: list[float], width: int, height: int) -> tuple[np.ndarray, bool]:
    """The [x, y, w, h] box as x1, y1, x2, y2 clipped to the image, and whether clipping changed it."""
    x, y, w, h = bbox
    corners = np.array([x, y, x + w, y + h], dtype=np.float64)
    clipped = np.clip(corners, 0, [width, height, width, height])
    return clipped.astype(np.float32), bool((clipped != corners).any())


def decode_segmentation(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """The uint8 [H, W] mask (C-contiguous) of polygons, an uncompressed RLE or a compressed RLE."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    # pycocotools decodes column by column (Fortran order); every later step (flip, area, stacking, tensors) runs
    # faster on rows, and cv2 transposes 5x faster than numpy's copy
    return cv2.transpose(mask_utils.decode(rle).T)


def label_space(categories: dict[int, str], labels_are_category_ids: bool,
                source: Path) -> tuple[dict[int, int], list[str]]:
    """The label of each category id, and the class name of each label (0 the background).

    Args:
        categories: category names by id.
        labels_are_category_ids: label k is category id k; otherwise the categories in id order are labels 1..K.
        source: the annotation file, for the error.
    """
    if not labels_are_category_ids:
        cat_ids = sorted(categories)
        return ({cat_id: label for label, cat_id in enumerate(cat_ids, start=1)},
                ["__background__"] + [categories[cat_id] for cat_id in cat_ids])
    if min(categories, default=1) < 1:
        raise UserError(f"{source}: category id {min(categories)} cannot be a label when labels are category ids "
                        "(0 is the background); set model.labels_are_category_ids=false")
    names = ["__background__"] + ["N/A"] * max(categories, default=0)
    for cat_id, name in categories.items():
        names[cat_id] = name
    return {cat_id: cat_id for cat_id in categories}, names


class CocoDetection(torch.utils.data.Dataset):
    """A COCO instances dataset yielding `(image, target)` in torchvision's detection convention (module docstring).

    Attributes:
        image_ids: the COCO ids of the dataset's images, sorted; `dataset[i]` is image `image_ids[i]`.
        cat_ids: the COCO category ids, sorted.
        cat_id_to_label, label_to_cat_id: the mappings between COCO category ids and labels: contiguous labels 1..K,
            or the category ids themselves when `labels_are_category_ids`.
        class_names: category names by label, `class_names[0] == "__background__"`; with `labels_are_category_ids`,
            "N/A" at the labels that are no category of the file.
        stats: counts from loading: `suspect_annotations` (left out), `clipped_boxes`, `dropped_boxes` (degenerate),
            `skipped_images` (no annotations, training only), `ignored_crowd` (crowd annotations left out in
            training).
    """

    def __init__(self, image_dir: str | Path, ann_file: str | Path, *, transforms: Callable | None = None,
                 with_masks: bool = True, train: bool = True, skip_empty: bool = True,
                 unreadable_images: str = "skip", labels_are_category_ids: bool = False):
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
            unreadable_images: `skip` an image file that cannot be read, with a warning naming it (in training the
                next readable image takes its place; in evaluation the item is None, which `collate_fn` leaves
                out), or `stop` with the error.
            labels_are_category_ids: label k is category id k, as in torchvision's COCO detectors (91 outputs for
                COCO's ids 1..90), instead of the k-th category in id order.
        """
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.transforms = transforms if transforms is not None else to_tensors
        self.with_masks = with_masks
        self.train = train
        self.unreadable = UnreadableImages(unreadable_images)
        content = read_annotation_file(self.ann_file, training=True, level=logging.WARNING if train else logging.INFO)
        for position, image in enumerate(content["images"]):
            check_fields(image, {"file_name": (str,)}, "image", position, self.ann_file)
        self.images = {image["id"]: image for image in content["images"]}
        categories = self._categories(content["categories"])
        self.cat_ids = sorted(categories)
        self.labels_are_category_ids = labels_are_category_ids
        self.cat_id_to_label, self.class_names = label_space(categories, labels_are_category_ids, self.ann_file)
        self.label_to_cat_id = {label: cat_id for cat_id, label in self.cat_id_to_label.items()}
        self.stats = {"clipped_boxes": 0, "dropped_boxes": 0, "skipped_images": 0, "ignored_crowd": 0,
                      "suspect_annotations": content["dropped_annotations"]}
        self.instances, self.boxes = self._index_annotations(content["annotations"], train)
        keep_empty = not (train and skip_empty)
        self.image_ids = [i for i in sorted(self.images) if i in self.instances or keep_empty]
        self.stats["skipped_images"] = len(self.images) - len(self.image_ids)
        self._log_stats()

    def _categories(self, categories: list[dict]) -> dict[int, str]:
        """Category names by id; an id given twice is an error, since the label space would be ambiguous."""
        names = {}
        for category in categories:
            if category["id"] in names:
                raise UserError(f"{self.ann_file}: category id {category['id']} appears twice")
            names[category["id"]] = category["name"]
        return names

    def _index_annotations(self, annotations: list, train: bool) -> tuple[dict[int, list[dict]], dict[int, np.ndarray]]:
        """The kept annotations of each image id (the file's dicts, not copies) and their clipped boxes
        (x1, y1, x2, y2) as a float32 [N, 4] array per image."""
        instances: dict[int, list[dict]] = {}
        boxes: dict[int, list[np.ndarray]] = {}
        for annotation in annotations:
            if train and annotation["iscrowd"]:
                self.stats["ignored_crowd"] += 1
                continue
            image = self.images[annotation["image_id"]]
            box, clipped = clip_box(annotation["bbox"], image["width"], image["height"])
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                self.stats["dropped_boxes"] += 1
                continue
            self.stats["clipped_boxes"] += clipped
            instances.setdefault(annotation["image_id"], []).append(annotation)
            boxes.setdefault(annotation["image_id"], []).append(box)
        return instances, {image_id: np.stack(image_boxes) for image_id, image_boxes in boxes.items()}

    def _log_stats(self) -> None:
        stats = self.stats
        message = ("%s: %d of %d images (%d skipped without annotations), %d categories; %d suspect annotations "
                   "left out, %d boxes clipped to the image, %d degenerate boxes dropped, %d crowd annotations ignored")
        level = logging.WARNING if stats["clipped_boxes"] or stats["dropped_boxes"] else logging.INFO
        logger.log(level, message, self.ann_file, len(self.image_ids), len(self.images), stats["skipped_images"],
                   len(self.cat_ids), stats["suspect_annotations"], stats["clipped_boxes"], stats["dropped_boxes"],
                   stats["ignored_crowd"])

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
        pixels = np.array(load_rgb(path, f"image id {image_id}"))
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
            "boxes": self.boxes[image_id].copy() if image_id in self.boxes else np.zeros((0, 4), dtype=np.float32),
            "labels": np.array([self.cat_id_to_label[a["category_id"]] for a in instances], dtype=np.int64),
            "image_id": image_id,
            "area": np.array([a["area"] for a in instances], dtype=np.float32),
            "iscrowd": np.array([a["iscrowd"] for a in instances], dtype=np.int64),
        }
        if self.with_masks:
            masks = [decode_segmentation(a["segmentation"], entry["height"], entry["width"]) for a in instances]
            target["masks"] = np.stack(masks) if masks else np.zeros((0, entry["height"], entry["width"]), np.uint8)
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict] | None:
        """Image `index` and its target, transformed; an unreadable image is handled as `unreadable_images` says."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                image = self.load_image(candidate)
            except ImageReadError as error:
                self.unreadable.skip(error)
                if not self.train:
                    return None
                continue
            return self.transforms(image, self.load_target(candidate))
        raise UserError(f"none of the {len(self)} images of {self.ann_file} in {self.image_dir} can be read")


def collate_fn(batch: list[tuple | None]) -> tuple[list, list]:
    """Batches (image, target) pairs as (list of images, list of targets), since detection images differ in size;
    leaves out the None of skipped images."""
    kept = [item for item in batch if item is not None]
    return [image for image, _ in kept], [target for _, target in kept]
