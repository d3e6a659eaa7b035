"""Classification transforms (torchvision.transforms.v2): the paper's CIFAR and ImageNet augmentations, center-crop
and 10-crop evaluation. Every random draw comes from torch's global generator, which SeededSamples seeds per sample.
"""
import torch
from torchvision.transforms import v2

from workbench.errors import UserError

AUGMENTATIONS = ("pad_crop", "scale", "random_resized", "none")


def to_bgr(image: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] RGB → BGR."""
    return image.flip(-3)


def to_normalised_tensor(mean, std, channel_order: str) -> list:
    """PIL image → float tensor in 0-1 (RGB), flipped to BGR when `channel_order` is "BGR" → (x - mean) / std.

    `mean` and `std` are in 0-1 units and in `channel_order`, as `backbones.normalization.unit_range_normalization`
    gives them.
    """
    flip = [to_bgr] if channel_order == "BGR" else []
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *flip, v2.Normalize(list(mean), list(std))]


def train_transform(augment: dict, mean, std, channel_order: str) -> v2.Compose:
    """The training augmentation `augment["kind"]`, then an optional horizontal flip and normalisation (see
    `to_normalised_tensor`).

    Kinds: "pad_crop" (CIFAR: zero-pad `padding` pixels, random `crop`), "scale" (the paper's ImageNet scale
    augmentation: shorter side resized to a random length in `scale_range`, random `crop`), "random_resized"
    (torchvision's RandomResizedCrop to `crop`), "none" (resize to `crop`).
    """
    kind, crop = augment["kind"], augment["crop"]
    if kind == "pad_crop":
        steps = [v2.RandomCrop(crop, padding=augment["padding"])]
    elif kind == "scale":
        low, high = augment["scale_range"]
        steps = [v2.RandomShortestSize(list(range(low, high + 1))), v2.RandomCrop(crop)]
    elif kind == "random_resized":
        steps = [v2.RandomResizedCrop(crop, antialias=True)]
    elif kind == "none":
        steps = [v2.Resize((crop, crop), antialias=True)]
    else:
        raise UserError(f"data.augment.kind={kind!r} is not supported; choose one of {', '.join(AUGMENTATIONS)}")
    if augment["hflip"]:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + to_normalised_tensor(mean, std, channel_order))


def resize_steps(resize: int | None) -> list:
    """Resizing of the shorter side to `resize` (nothing when None)."""
    return [] if resize is None else [v2.Resize(resize, antialias=True)]


def eval_transform(resize: int | None, crop: int | None, mean, std, channel_order: str) -> v2.Compose:
    """Shorter side to `resize`, center `crop` (None: the image as it is), normalised (see `to_normalised_tensor`)
    → [3, H, W]."""
    crop_steps = [] if crop is None else [v2.CenterCrop(crop)]
    return v2.Compose(resize_steps(resize) + crop_steps + to_normalised_tensor(mean, std, channel_order))


class NormaliseEach:
    """Normalises each image of a tuple of crops (see `to_normalised_tensor`) and stacks them → [K, 3, H, W]."""

    def __init__(self, mean, std, channel_order: str):
        self.normalise = v2.Compose(to_normalised_tensor(mean, std, channel_order))

    def __call__(self, crops) -> torch.Tensor:
        return torch.stack([self.normalise(crop) for crop in crops])


def ten_crop_transform(resize: int | None, crop: int, mean, std, channel_order: str) -> v2.Compose:
    """The paper's 10-crop testing: shorter side to `resize`, then the four corner crops and the center crop, and the
    same five crops of the mirrored image → [10, 3, crop, crop].

    This is torchvision's TenCrop order: crops 0-4 are top-left, top-right, bottom-left, bottom-right, center; crop 5
    (the mirror's top-left) is the mirror of crop 1, and crops 6, 7, 8, 9 mirror crops 0, 3, 2, 4.
    """
    return v2.Compose(resize_steps(resize) + [v2.TenCrop(crop), NormaliseEach(mean, std, channel_order)])
