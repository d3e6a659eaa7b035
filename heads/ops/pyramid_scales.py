"""The scale of every pyramid level and the mapper of RoIs to levels, as torchvision's MultiScaleRoIAlign infers
them (its private `torchvision.ops.poolers._setup_scales`), for a torchvision without that helper."""
import torch
from torch import Tensor
from torchvision.ops.poolers import LevelMapper


def pyramid_scales(features: list[Tensor], image_shapes: list[tuple[int, int]], canonical_scale: int,
                   canonical_level: int) -> tuple[list[float], LevelMapper]:
    """Each map's scale, its height over the tallest image's rounded to a power of 2, and the level mapper from the
    first map's level to the last one's.

    Args:
        features: the maps pooled from, finest first.
        image_shapes: (height, width) of every image of the batch.
    """
    if not image_shapes:
        raise ValueError("image_shapes is empty: the scale of each map is inferred from the images' sizes")
    height = 0
    for shape in image_shapes:
        height = max(height, shape[0])
    # the logarithm in float32, as torchvision rounds it
    exponents = [int(torch.tensor(float(f.shape[-2]) / float(height)).log2().round()) for f in features]
    return [2.0**e for e in exponents], LevelMapper(-exponents[0], -exponents[-1], canonical_scale=canonical_scale,
                                                    canonical_level=canonical_level)
