"""Normalisation layers chosen by name, and the conversion of BatchNorm into frozen BatchNorm."""
import math

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

NORMS = ("bn", "frozen_bn", "sync_bn", "gn")
GN_GROUPS = 32


def make_norm(norm: str, channels: int) -> nn.Module:
    """Builds the normalisation layer `norm` over `channels` channels.

    `gn` uses 32 groups, or the largest divisor of `channels` below 32 for narrow layers (CIFAR nets).
    """
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "frozen_bn":
        return FrozenBatchNorm2d(channels)
    if norm == "sync_bn":
        return nn.SyncBatchNorm(channels)
    if norm == "gn":
        return nn.GroupNorm(math.gcd(GN_GROUPS, channels), channels)
    raise ValueError(f"norm={norm!r} is not supported; choose one of {', '.join(NORMS)}")


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm in `module` (itself included) by a FrozenBatchNorm2d with the same statistics.

    Returns:
        The converted module; `module` itself is changed in place unless it is a BatchNorm.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        converted = freeze_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module
