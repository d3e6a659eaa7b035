"""timm's `features_only` view of a whole model, by the kind of its blocks."""
from collections.abc import Sequence

from torch import nn

from .features import FeatureExtractor
from .preact import PreActFeatures, ResNetV2


def feature_extractor_for(model: nn.Module, out_indices: Sequence[int]) -> nn.Module:
    """`model` cut after its last selected map, returning the maps `out_indices` selects.

    Pre-activation nets get `PreActFeatures` (their stem has no norm and BatchNorm cannot be folded into the
    convolution after it); the other ResNets get `FeatureExtractor`, which folds BatchNorm where it can.
    """
    if isinstance(model, ResNetV2):
        return PreActFeatures(model, out_indices)
    return FeatureExtractor(model, out_indices)
