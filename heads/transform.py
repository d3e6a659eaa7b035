"""The detector's input transform: torchvision's resizing and batching, normalising as the backbone's weights expect.

Images given to a detector are always RGB float tensors in 0-1, as in torchvision. Weights trained on other inputs
say so in their `pretrained_cfg`: MSRA Caffe weights expect BGR pixels in 0-255 with the mean subtracted only
(`channel_order="BGR"`, `pixel_range=255`, and in 0-1 units `mean=(0.406, 0.456, 0.485)`, `std=(1/255,) * 3`).
"""
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes, resize_keypoints

from backbones.capabilities import private_symbol
from backbones.normalization import unit_range_normalization


def resize_image_and_masks(image: Tensor, short_side: int, max_size: int, target: dict[str, Tensor] | None = None,
                           fixed_size: tuple[int, int] | None = None) -> tuple[Tensor, dict[str, Tensor] | None]:
    """torchvision's private `_resize_image_and_masks` as `RCNNTransform` calls it (eager, or scripted with a
    `fixed_size`), for a torchvision without it: the image bilinear, the target's masks nearest.

    Args:
        short_side: the shorter side's size, unless the longer one would then exceed `max_size`.
        fixed_size: (width, height) to resize to instead.
    """
    size: list[int] | None = None
    scale: float | None = None
    recompute_scale: bool | None = None
    if fixed_size is not None:
        size = [fixed_size[1], fixed_size[0]]
    else:
        height, width = image.shape[-2:]
        scale = min(short_side / min(height, width), max_size / max(height, width))
        recompute_scale = True
    image = F.interpolate(image[None], size=size, scale_factor=scale, mode="bilinear",
                          recompute_scale_factor=recompute_scale, align_corners=False)[0]
    if target is not None and "masks" in target:
        target["masks"] = F.interpolate(target["masks"][:, None].float(), size=size, scale_factor=scale,
                                        recompute_scale_factor=recompute_scale)[:, 0].byte()
    return image, target


_resize_image_and_masks = private_symbol("torchvision.models.detection.transform", "_resize_image_and_masks",
                                         resize_image_and_masks)


class RCNNTransform(GeneralizedRCNNTransform):
    """GeneralizedRCNNTransform that normalises RGB 0-1 images as `pretrained_cfg` prescribes (see
    `backbones.normalization.unit_range_normalization`).

    Args:
        min_size: shorter side after resizing; a sequence picks one at random per training image.
        max_size: longest side after resizing.
        pretrained_cfg: the backbone's config, with `mean`, `std`, `channel_order` ("RGB" or "BGR") and `pixel_range`
            (1.0 or 255.0).
        size_divisible: the batch is padded to a multiple of this.
        fixed_size: resize every image to this (width, height) instead.
        skip_resize_in_training: leave training images at the size the data pipeline gives them; evaluation still
            resizes to `min_size`/`max_size` and maps the outputs back to the original size.
    """

    def __init__(
        self, min_size: int | tuple[int, ...], max_size: int, pretrained_cfg: Mapping, *, size_divisible: int = 32,
        fixed_size: tuple[int, int] | None = None, skip_resize_in_training: bool = False,
    ):
        mean, std, channel_order = unit_range_normalization(pretrained_cfg)
        super().__init__(min_size, max_size, mean, std, size_divisible, fixed_size)
        self._skip_resize = skip_resize_in_training  # torchvision's attribute name, its keyword being private
        self.channel_order = channel_order

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Flips RGB to BGR when the weights expect BGR, then subtracts the mean and divides by the std, in
        torchvision's order of operations (the same bits)."""
        if not image.is_floating_point():
            raise TypeError(f"images must be float tensors with values in 0-1, got {image.dtype}")
        if self.channel_order == "BGR":
            image = image.flip(0)
        mean = torch.as_tensor(self.image_mean, dtype=image.dtype, device=image.device)
        std = torch.as_tensor(self.image_std, dtype=image.dtype, device=image.device)
        return (image - mean[:, None, None]) / std[:, None, None]

    def resize(
        self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """torchvision's resize (the short side to a random `min_size` in training, to the last one in evaluation,
        the long one at most `max_size`; boxes, masks and keypoints alike), written without `super()` so that
        TorchScript compiles it. An image so elongated (e.g. 10000x20) that its short side would shrink below one
        pixel, which torchvision fails on, is resized to one pixel on that side instead."""
        if self.training and self._skip_resize:
            return image, target
        height, width = image.shape[-2:]
        short_side = self.torch_choice(self.min_size) if self.training else self.min_size[-1]
        fixed_size = self._fixed_size_for(height, width, short_side)
        image, target = _resize_image_and_masks(image, short_side, self.max_size, target, fixed_size)
        if target is None:
            return image, target
        new_size = [image.shape[-2], image.shape[-1]]
        target["boxes"] = resize_boxes(target["boxes"], [height, width], new_size)
        if "keypoints" in target:
            target["keypoints"] = resize_keypoints(target["keypoints"], [height, width], new_size)
        return image, target

    def _fixed_size_for(self, height: int, width: int, short_side: int) -> tuple[int, int] | None:
        """`fixed_size`; or the (width, height) that eager PyTorch's scale gives (`floor(side * scale)`, the scale in
        float64) when scripted, where torchvision's resizing computes it in float32 and makes some sides a pixel
        shorter (640x480 at min_size 800: 799 instead of 800), and for an image whose short side would shrink below
        one pixel, kept at one pixel; None to resize by scale."""
        if self.fixed_size is not None:
            return self.fixed_size
        scale = min(short_side / min(height, width), self.max_size / max(height, width))
        if not torch.jit.is_scripting() and min(height, width) * scale >= 1:
            return None
        return max(1, int(width * scale)), max(1, int(height * scale))

    def __repr__(self) -> str:
        return super().__repr__().replace("Normalize(", f"Normalize(channel_order={self.channel_order}, ", 1)
