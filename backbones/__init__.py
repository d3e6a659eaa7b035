"""ResNet backbones of He et al. 2015 behind a timm-style registry, with weights from every common format."""
from . import builders, preact_builders  # noqa: F401  (register the ResNet family)
from .feature_extractors import feature_extractor_for
from .features import FeatureExtractor, FeatureInfo
from .fpn import BackboneWithFPN, create_fpn_backbone
from .fuse import fuse_batchnorm
from .hub import WeightsDownloadError
from .old_paths import register_moved_modules
from .norm import freeze_batchnorm
from .packed_conv import clear_weight_caches
from .preact import PreActFeatures, ResNetV2
from .registry import create_backbone, list_backbones, register_backbone, split_name
from .resnet import ResNet
from .weights import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    load_weights,
    read_checkpoint,
    read_weights,
)

__all__ = [
    "BackboneWithFPN", "CheckpointError", "CheckpointMismatchError", "CheckpointNotFoundError", "FeatureExtractor",
    "FeatureInfo", "PreActFeatures", "ResNet", "ResNetV2", "WeightsDownloadError", "clear_weight_caches",
    "create_backbone", "create_fpn_backbone", "feature_extractor_for", "freeze_batchnorm", "fuse_batchnorm",
    "list_backbones", "load_weights", "read_checkpoint", "read_weights", "register_backbone", "split_name",
]

# The modules' paths before they were renamed (deprecated, for one release).
register_moved_modules({"backbones.layout": "backbones.memory_format"})
