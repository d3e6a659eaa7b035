"""Normalisation layers chosen by name, and the conversion of BatchNorm into frozen BatchNorm."""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from .memory_format import is_channels_last

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
        return GroupNorm(math.gcd(GN_GROUPS, channels), channels)
    raise ValueError(f"norm={norm!r} is not supported; choose one of {', '.join(NORMS)}")


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that normalises channels-last CPU maps in NCHW and gives them back channels-last: torch's
    channels-last CPU kernels measured 4-6x slower, forward and backward, on batches of 7x7 RoIs (2-core AVX2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or not is_channels_last(x):
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        out = F.group_norm(x.contiguous(), self.num_groups, self.weight, self.bias, self.eps)
        return out.contiguous(memory_format=torch.channels_last)


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


def set_frozen_batchnorm_eps(module: nn.Module, eps: float) -> nn.Module:
    """Sets the eps of every FrozenBatchNorm2d in `module`, in place, as torchvision's `overwrite_eps` does for its
    COCO_V1 detectors (trained with eps 0)."""
    for child in module.modules():
        if isinstance(child, FrozenBatchNorm2d):
            child.eps = eps
    return module
