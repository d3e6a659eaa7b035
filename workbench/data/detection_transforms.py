"""Detection augmentation through albumentations, keeping the image, boxes, masks and labels consistent.

A transform is a callable `(image, target) -> (image, target)` that `workbench.data.coco.CocoDetection` applies to
every sample:

    in:  image uint8 [H, W, 3] RGB; target of numpy arrays: boxes float32 [N, 4] (x1, y1, x2, y2 pixels), labels
         int64 [N], area float32 [N], iscrowd int64 [N], optionally masks uint8 [N, H, W], and the int image_id
    out: image float32 tensor [3, H', W'] in 0-1; the same keys as tensors (image_id stays an int)

Boxes go through albumentations' bbox processing and masks through its mask processing; an index field tells which
instances survived, so labels, masks, areas and crowd flags follow their boxes. Instances whose box fell under 1 pixel
or whose mask became empty are dropped. After a resize or a crop, boxes are recomputed from the masks (when there are
masks), so that they stay tight around what is left of each object at the new resolution: a crop cuts objects, and a
downscaled mask loses thin tips. `area` becomes the mask's pixel count (or, without masks, the area scaled like the
box).

Evaluation transforms do not resize: the detector's GeneralizedRCNNTransform does, and the detections are compared
with the original annotation file.
"""
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations queries PyPI at import time unless told not to

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from workbench.errors import UserError

INSTANCE_KEYS = ("boxes", "labels", "masks", "area", "iscrowd")
MASK_INTERPOLATION = cv2.INTER_NEAREST_EXACT  # pixel-centre aligned, so resized masks stay inside resized boxes


class ResizeShortestEdge(A.SmallestMaxSize):
    """Resizes the short side to a size picked at random from `sizes`, unless the long side would then exceed
    `max_size` (torchvision's and detectron2's multi-scale training resize)."""

    def __init__(self, sizes: list[int], max_size: int | None = None):
        super().__init__(max_size=list(sizes), mask_interpolation=MASK_INTERPOLATION)
        self.longest_side_limit = max_size

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        scale = super().get_params_dependent_on_data(params, data)["scale"]
        if self.longest_side_limit:
            scale = min(scale, self.longest_side_limit / max(params["shape"][:2]))
        return {"scale": scale}


class ResizeScale(A.LongestMaxSize):
    """Large-scale jitter's resize: fits the image in a square of side `size * s`, `s` uniform in
    [min_scale, max_scale] (detectron2's ResizeScale)."""

    def __init__(self, size: int, min_scale: float, max_scale: float):
        super().__init__(max_size=size, mask_interpolation=MASK_INTERPOLATION)
        self.scale_range = (min_scale, max_scale)

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        jitter = self.py_random.uniform(*self.scale_range)
        return {"scale": jitter * self.max_size / max(params["shape"][:2])}


def to_tensors(image: np.ndarray, target: dict) -> tuple[torch.Tensor, dict]:
    """The uint8 [H, W, 3] image as a float [3, H, W] tensor in 0-1, and the target's arrays as tensors.

    The image tensor keeps the pixels' [H, W, 3] memory layout, as torchvision.transforms.v2.ToImage's does:
    converting without transposing measured 3x faster, and the detector's normalisation reads either layout.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255)
    dtypes = {"boxes": torch.float32, "labels": torch.int64, "masks": torch.uint8, "area": torch.float32,
              "iscrowd": torch.int64}
    converted = {key: torch.as_tensor(np.ascontiguousarray(value), dtype=dtypes[key]) if key in dtypes else value
                 for key, value in target.items()}
    return tensor, converted


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """The tight x1, y1, x2, y2 box [N, 4] of each non-empty mask [N, H, W] (x2, y2 exclusive pixel edges)."""
    rows, columns = masks.any(axis=2), masks.any(axis=1)
    height, width = masks.shape[1:]
    y1 = rows.argmax(axis=1)
    y2 = height - rows[:, ::-1].argmax(axis=1)
    x1 = columns.argmax(axis=1)
    x2 = width - columns[:, ::-1].argmax(axis=1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of x1, y1, x2, y2 boxes [N, 4]."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


class DetectionTransform:
    """Applies an albumentations pipeline to an image and its detection target (see the module docstring).

    Args:
        operations: albumentations transforms, applied in order; with no geometric (dual) transform among them, the
            target is only converted to tensors.
        recompute_boxes: set the boxes to the tight boxes of the transformed masks, when masks are present (after
            resizes and crops).
    """

    def __init__(self, operations: list[A.BasicTransform], recompute_boxes: bool = False):
        self.geometric = any(isinstance(operation, A.DualTransform) for operation in operations)
        self.recompute_boxes = recompute_boxes
        bbox_params = A.BboxParams(format="pascal_voc", label_fields=["indices"], min_width=1, min_height=1,
                                   clip=True) if self.geometric else None
        self.pipeline = A.Compose(operations, bbox_params=bbox_params)
        only = operations[0] if len(operations) == 1 else None
        self.flip_only = only.p if type(only) is A.HorizontalFlip else None
        self.random = np.random.default_rng()

    def set_random_seed(self, seed: int) -> None:
        """Makes the next draws reproducible (albumentations keeps its own generators)."""
        self.pipeline.set_random_seed(seed)
        self.random = np.random.default_rng(seed)

    def _apply(self, inputs: dict) -> dict:
        """The pipeline's outputs; a lone horizontal flip runs here instead, with albumentations' results (boxes
        under 1 pixel dropped) and without its per-call bookkeeping (measured: 40% of a 128 px sample's time)."""
        if self.flip_only is None:
            return self.pipeline(**inputs)
        outputs = dict(inputs)
        if self.random.random() < self.flip_only:
            width = inputs["image"].shape[1]
            outputs["image"] = cv2.flip(inputs["image"], 1)  # 50x numpy's reversed copy of 3-byte pixels
            outputs["bboxes"] = np.stack([width - inputs["bboxes"][:, 2], inputs["bboxes"][:, 1],
                                          width - inputs["bboxes"][:, 0], inputs["bboxes"][:, 3]], axis=1)
            if "masks" in inputs:
                outputs["masks"] = torch.from_numpy(inputs["masks"]).flip(-1).numpy()  # 5x numpy's
        boxes = outputs["bboxes"].reshape(-1, 4)
        large = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        outputs["bboxes"], outputs["indices"] = boxes[large], inputs["indices"][large]
        return outputs

    def __call__(self, image: np.ndarray, target: dict) -> tuple[torch.Tensor, dict]:
        if not self.geometric:
            return to_tensors(self.pipeline(image=image)["image"], target)
        inputs = {"image": image, "bboxes": target["boxes"], "indices": np.arange(len(target["boxes"]))}
        if "masks" in target and len(target["boxes"]):
            inputs["masks"] = target["masks"]
        outputs = self._apply(inputs)
        kept = np.asarray(outputs["indices"], dtype=np.int64)
        result = {key: target[key][kept] for key in INSTANCE_KEYS if key in target and key != "masks"}
        result["boxes"] = np.asarray(outputs["bboxes"], dtype=np.float32).reshape(-1, 4)
        if "masks" in target:
            result = self._follow_masks(result, outputs, kept)
        else:
            result["area"] = result["area"] * box_areas(result["boxes"]) / box_areas(target["boxes"][kept])
        return to_tensors(outputs["image"], dict(target, **result))

    def _follow_masks(self, result: dict, outputs: dict, kept: np.ndarray) -> dict:
        """Adds the surviving instances' masks to `result`, drops instances whose mask became empty, and derives
        their areas (and, when `recompute_boxes`, their boxes) from the masks."""
        height, width = outputs["image"].shape[:2]
        masks = np.asarray(outputs["masks"])[kept] if len(kept) else np.zeros((0, height, width), dtype=np.uint8)
        pixels = torch.from_numpy(masks).flatten(1).sum(1, dtype=torch.int32).numpy()  # masks are 0/1
        nonempty = pixels > 0
        result = {key: value[nonempty] for key, value in dict(result, masks=masks).items()}
        if self.recompute_boxes:
            result["boxes"] = boxes_from_masks(result["masks"])
        result["area"] = pixels[nonempty].astype(np.float32)
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(recompute_boxes={self.recompute_boxes}, pipeline={self.pipeline})"


def build_transforms(train: bool, *, hflip_prob: float = 0.5, scales: list[int] | None = None,
                     max_size: int | None = None, lsj: tuple[int, float, float] | None = None,
                     photometric: bool = False) -> DetectionTransform:
    """The training or evaluation transform of a detection dataset.

    Training applies, in order: a resize (multi-scale `scales` or large-scale jitter `lsj`, or none), a horizontal
    flip, and photometric jitter; after a resize, boxes are recomputed from the masks when there are masks.
    Evaluation only converts to tensors: the detector resizes its inputs itself.

    Args:
        train: build the training transform; otherwise the evaluation one (all other arguments ignored).
        hflip_prob: probability of a horizontal flip.
        scales: short-side sizes for multi-scale training, one picked at random per image, e.g. [96, 112, 128, 144].
        max_size: limit on the long side when resizing to `scales`.
        lsj: large-scale jitter (output_size, min_scale, max_scale), e.g. (128, 0.1, 2.0): fit the image in a square of
            `output_size * uniform(min_scale, max_scale)`, then crop or pad (bottom-right, with 0) to an
            `output_size` square.
        photometric: random brightness, contrast, saturation and hue (albumentations ColorJitter, p=0.8).

    Returns:
        A DetectionTransform, called as `transform(image, target)`.
    """
    if not train:
        return DetectionTransform([])
    if scales and lsj:
        raise UserError(f"choose multi-scale resizing (scales={scales}) or large-scale jitter (lsj={lsj}), not both")
    if max_size and not scales:
        raise UserError(f"max_size={max_size} limits the multi-scale resize and needs scales")
    operations: list[A.BasicTransform] = []
    if scales:
        operations.append(ResizeShortestEdge(list(scales), max_size))
    if lsj:
        output_size, min_scale, max_scale = lsj
        if not 0 < min_scale <= max_scale:
            raise UserError(f"lsj scales must satisfy 0 < min_scale <= max_scale, got {lsj}")
        operations += [ResizeScale(output_size, min_scale, max_scale),
                       A.RandomCrop(output_size, output_size, pad_if_needed=True, pad_position="top_left",
                                    border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)]
    if hflip_prob > 0:
        operations.append(A.HorizontalFlip(p=hflip_prob))
    if photometric:
        operations.append(A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.8))
    return DetectionTransform(operations, recompute_boxes=bool(scales or lsj))
