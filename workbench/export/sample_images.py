"""The images an export is verified on: the user's files, or seeded random images of two sizes (so that the
exported file's dynamic height and width, and a backbone's dynamic batch, are exercised)."""
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torch import Tensor

from backbones.normalization import unit_range_normalization
from workbench.data.images import load_rgb

from .subjects import ExportSubject


def normalize(images: Tensor, normalization: dict) -> Tensor:
    """RGB 0-1 images ([..., 3, H, W]) as a backbone's weights expect them (see
    `backbones.normalization.unit_range_normalization`)."""
    mean, std, channel_order = unit_range_normalization(normalization)
    if channel_order == "BGR":
        images = images.flip(-3)
    mean, std = torch.tensor(mean, dtype=images.dtype), torch.tensor(std, dtype=images.dtype)
    return (images - mean[:, None, None]) / std[:, None, None]


def random_inputs(subject: ExportSubject, seed: int = 0) -> list[Tensor]:
    """Seeded random inputs of two sizes around `subject.image_size` (s).

    Returns:
        Detectors: two RGB 0-1 images [3, H, W], (3s/4 x s) and (s x 5s/6). Backbones and classifiers: a batch of two
        s x s images and a batch of one (5s/4 x 3s/4), normalised as the subject's inputs are.
    """
    generator = torch.Generator().manual_seed(seed)
    s = subject.image_size
    if subject.is_detector:
        return [torch.rand(3, s * 3 // 4, s, generator=generator), torch.rand(3, s, s * 5 // 6, generator=generator)]
    batches = [torch.rand(2, 3, s, s, generator=generator), torch.rand(1, 3, s + s // 4, s - s // 4,
                                                                       generator=generator)]
    return [normalize(batch, subject.normalization) for batch in batches]


def file_inputs(subject: ExportSubject, paths: list[str | Path]) -> list[Tensor]:
    """The image files as the subject takes them: detectors one RGB 0-1 image each; backbones and classifiers a
    batch of one each, the short side resized to `subject.image_size`, normalised.

    Raises:
        ImageReadError: a file is missing or not an image.
    """
    inputs = []
    for path in paths:
        image = TF.pil_to_tensor(load_rgb(path)).float() / 255
        if not subject.is_detector:
            image = normalize(TF.resize(image, subject.image_size, antialias=True), subject.normalization)[None]
        inputs.append(image)
    return inputs


def describe(inputs: list[Tensor], from_files: bool) -> str:
    """E.g. "2 random inputs: 2x3x64x64, 1x3x80x48"."""
    source = "image files" if from_files else "random inputs"
    return f"{len(inputs)} {source}: " + ", ".join("x".join(map(str, x.shape)) for x in inputs)
