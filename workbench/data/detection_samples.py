"""Any map-style dataset of torchvision's detection samples, checked and put in the form training and evaluation read.

A user's dataset (torchvision's tutorial writes one for Penn-Fudan) returns `(image, target)`:

    image: a [C, H, W] tensor, float in 0-1 or uint8 (C = 3, or 1 for grey), or a PIL image
    target: a dict with `boxes` float [N, 4] (x1, y1, x2, y2 in pixels), `labels` int64 [N] in 1..K, and optionally
            `masks` uint8 / bool [N, H, W], `iscrowd` [N] and `area` [N]

`DetectionSamples(dataset, class_names)` checks each sample as it is read (a UserError names the sample and the key),
and yields float images and complete targets with the sample's position + 1 as `image_id`, as `CocoDetection` does.
In training, crowd instances are left out of the targets (the losses cannot ignore them).
"""
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from workbench.errors import UserError

BACKGROUND = "__background__"


class DetectionSamples(Dataset):
    """A user's detection dataset, checked, with the label space our detectors and evaluation use.

    Attributes:
        get_height_and_width: the dataset's own, when it has one (torchvision's convention), for aspect-ratio grouping.
        class_names: names by label, `class_names[0] == "__background__"`.
        label_to_cat_id: label k is category id k (the COCO ground truth built from the targets uses the same ids).
        labels_are_category_ids: False (the class names give the label space).
    """

    labels_are_category_ids = False

    def __init__(self, dataset: Dataset, class_names: Sequence[str], *, train: bool, name: str = "dataset"):
        """
        Args:
            dataset: a map-style dataset of `(image, target)` samples (module docstring).
            class_names: the K class names of labels 1..K (without the background).
            train: leave crowd instances out of the targets.
            name: what error messages call the dataset.
        """
        if not class_names or not all(isinstance(n, str) and n for n in class_names):
            raise UserError(f"{name}: class_names must be a non-empty list of the K class names of labels 1..K, "
                            f"got {class_names!r:.80}")
        if len(set(class_names)) != len(class_names) or BACKGROUND in class_names:
            raise UserError(f"{name}: class_names must be distinct names without {BACKGROUND!r}, "
                            f"got {list(class_names)!r:.120}")
        self.dataset = dataset
        self.class_names = [BACKGROUND, *class_names]
        self.label_to_cat_id = {label: label for label in range(1, len(self.class_names))}
        self.train = train
        self.name = name
        if hasattr(dataset, "get_height_and_width"):  # torchvision's convention for aspect-ratio grouping
            self.get_height_and_width = dataset.get_height_and_width

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        sample = self.dataset[index]
        where = f"{self.name}[{index}]"
        if not (isinstance(sample, (tuple, list)) and len(sample) == 2 and isinstance(sample[1], dict)):
            raise UserError(f"{where}: expected an (image, target dict) pair, got {type(sample).__name__}")
        image = float_image(sample[0], where)
        target = self.checked_target(sample[1], image.shape[-2:], where)
        target["image_id"] = index + 1
        if self.train:
            keep = target["iscrowd"] == 0
            target = {key: value[keep] if torch.is_tensor(value) else value for key, value in target.items()}
        return image, target

    def checked_target(self, target: dict, size: torch.Size | None, where: str) -> dict:
        """The target's tensors in their dtypes, with `iscrowd` (zeros) and `area` (the masks' or the boxes') when
        missing; a UserError naming `where` and the key when something is not as the module docstring says."""
        for key in ("boxes", "labels"):
            if key not in target:
                raise UserError(f"{where}: the target has no {key!r} (keys: {sorted(target)})")
        boxes = torch.as_tensor(target["boxes"], dtype=torch.float32)
        boxes = boxes.reshape(0, 4) if boxes.numel() == 0 else boxes
        count = len(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise UserError(f"{where}: 'boxes' must be [N, 4] (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
        bad = ~torch.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            raise UserError(f"{where}: box {int(bad.nonzero()[0])} is {boxes[bad][0].tolist()}; boxes must be finite "
                            "(x1, y1, x2, y2) with x2 > x1 and y2 > y1, in pixels")
        labels = torch.as_tensor(target["labels"]).reshape(-1)
        if labels.is_floating_point() or len(labels) != count:
            raise UserError(f"{where}: 'labels' must be {count} integers (one per box), got {labels.tolist()!r:.80}")
        outside = (labels < 1) | (labels >= len(self.class_names))
        if outside.any():
            raise UserError(f"{where}: label {int(labels[outside][0])} is not in 1..{len(self.class_names) - 1} "
                            f"(the {len(self.class_names) - 1} class names; 0 is the background)")
        checked = {"boxes": boxes, "labels": labels.long()}
        if "masks" in target:
            masks = torch.as_tensor(np.asarray(target["masks"]))
            if masks.shape != (count, *size):
                raise UserError(f"{where}: 'masks' must be [{count}, {size[0]}, {size[1]}] (one per box, the image's "
                                f"size), got {tuple(masks.shape)}")
            checked["masks"] = (masks > 0).to(torch.uint8)
        for key in ("iscrowd", "area"):
            if key in target and len(torch.as_tensor(target[key]).reshape(-1)) != count:
                raise UserError(f"{where}: {key!r} must have {count} values (one per box)")
        checked["iscrowd"] = torch.as_tensor(target.get("iscrowd", torch.zeros(count)), dtype=torch.int64).reshape(-1)
        if "area" in target:
            checked["area"] = torch.as_tensor(target["area"], dtype=torch.float32).reshape(-1)
        elif "masks" in checked:
            checked["area"] = checked["masks"].flatten(1).sum(1).float()
        else:
            checked["area"] = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return checked


def float_image(image, where: str) -> torch.Tensor:
    """A [3, H, W] float tensor in 0-1 from a PIL image or a [C, H, W] uint8 / float tensor (C = 1 or 3)."""
    if isinstance(image, Image.Image):
        image = pil_to_tensor(image.convert("RGB"))
    if not torch.is_tensor(image) or image.ndim != 3 or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise UserError(f"{where}: the image must be a [C, H, W] tensor with C = 1 or 3, or a PIL image; got {shape}")
    if image.dtype == torch.uint8:
        image = image.float() / 255
    elif not image.is_floating_point():
        raise UserError(f"{where}: the image must be uint8 or float in 0-1, got {image.dtype}")
    elif image.numel() and image.max() > 1.5:
        raise UserError(f"{where}: a float image must hold values in 0-1, got values up to {float(image.max()):.1f} "
                        "(divide by 255)")
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image
