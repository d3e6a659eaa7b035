"""Residual blocks of He et al. 2015: basic (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1), with shortcuts A, B, C or none.

Module names follow torchvision (`conv1 bn1 conv2 bn2 conv3 bn3 downsample`) so its checkpoints load unchanged.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .norm import make_norm

SHORTCUTS = ("A", "B", "C", "none")
STYLES = ("pytorch", "caffe")


class ZeroPadShortcut(nn.Module):
    """Option A: identity that subsamples by `stride` and zero-pads the extra channels; it has no parameters."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(
    shortcut: str, in_channels: int, out_channels: int, stride: int, norm: str
) -> nn.Module | None:
    """Builds the shortcut of one block; None means identity (or no shortcut at all for `"none"`).

    Args:
        shortcut: "A" zero-padding identity, "B" projection only where the shape changes, "C" projection always,
            "none" for plain nets.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut={shortcut!r} is not supported; choose one of {', '.join(SHORTCUTS)}")
    changes_shape = stride != 1 or in_channels != out_channels
    if shortcut == "none" or (shortcut in ("A", "B") and not changes_shape):
        return None
    if shortcut == "A":
        return ZeroPadShortcut(stride, out_channels - in_channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), make_norm(norm, out_channels)
    )


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias whose padding keeps the size (up to the stride)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class ResidualBlock(nn.Module):
    """Shared forward of both block kinds: residual branch, shortcut (unless plain), addition, ReLU."""

    expansion = 1

    def __init__(self, residual: bool, downsample: nn.Module | None):
        super().__init__()
        self.residual = residual
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.residual:  # in place, as torchvision's blocks: one map less at the peak
            out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR nets)."""

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1, first_dilation: int | None = None,
        norm: str = "bn", shortcut: str = "B", style: str = "pytorch",
    ):
        out_channels = planes * self.expansion
        super().__init__(shortcut != "none", make_shortcut(shortcut, in_channels, out_channels, stride, norm))
        self.conv1 = conv3x3(in_channels, planes, stride, first_dilation or dilation)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = conv3x3(planes, out_channels, dilation=dilation)
        self.bn2 = make_norm(norm, out_channels)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4); `style` puts the stride on the 3x3 ("pytorch") or the first 1x1 ("caffe")."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1, first_dilation: int | None = None,
        norm: str = "bn", shortcut: str = "B", style: str = "pytorch",
    ):
        if style not in STYLES:
            raise ValueError(f"style={style!r} is not supported; choose one of {', '.join(STYLES)}")
        out_channels = planes * self.expansion
        super().__init__(shortcut != "none", make_shortcut(shortcut, in_channels, out_channels, stride, norm))
        stride_1x1, stride_3x3 = (stride, 1) if style == "caffe" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=stride_1x1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3, first_dilation or dilation)
        self.bn2 = make_norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = make_norm(norm, out_channels)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
