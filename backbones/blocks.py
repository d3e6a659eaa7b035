"""Residual blocks of He et al. 2015: basic (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1), with shortcuts A, B, C or none.

Module names follow torchvision (`conv1 bn1 conv2 bn2 conv3 bn3 downsample`) so its checkpoints load unchanged.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .norm import make_norm

SHORTCUTS = ("A", "B", "C", "none")
STYLES = ("pytorch", "caffe")
# Base width of plain ResNets (a bottleneck's 3x3 has int(planes * base_width / BASE_WIDTH) * cardinality channels);
# ResNeXt 32x4d has cardinality 32 and base width 4, wide ResNets base width 128.
BASE_WIDTH = 64
# Where option A puts its zero channels: after the input's ("append"), or half before and half after ("center").
SHORTCUT_PADS = ("append", "center")


class ZeroPadShortcut(nn.Module):
    """Option A: identity that subsamples by `stride` and adds `extra_channels` zero channels; it has no parameters.

    Args:
        placement: "append" puts the zero channels after the input's (models trained here); "center" splits them
            evenly before and after (akamaster/pytorch_resnet_cifar10's CIFAR ResNets).
    """

    def __init__(self, stride: int, extra_channels: int, placement: str = "append"):
        super().__init__()
        if placement not in SHORTCUT_PADS:
            raise ValueError(f"shortcut_pad={placement!r} is not supported; choose one of {', '.join(SHORTCUT_PADS)}")
        self.stride = stride
        self.placement = placement
        self.channels_before = extra_channels // 2 if placement == "center" else 0
        self.channels_after = extra_channels - self.channels_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.channels_before, self.channels_after))


def make_shortcut(
    shortcut: str, in_channels: int, out_channels: int, stride: int, norm: str, shortcut_pad: str = "append"
) -> nn.Module | None:
    """Builds the shortcut of one block; None means identity (or no shortcut at all for `"none"`).

    Args:
        shortcut: "A" zero-padding identity, "B" projection only where the shape changes, "C" projection always,
            "none" for plain nets.
        shortcut_pad: where option A puts its zero channels: "append" or "center" (see `ZeroPadShortcut`).
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut={shortcut!r} is not supported; choose one of {', '.join(SHORTCUTS)}")
    changes_shape = stride != 1 or in_channels != out_channels
    if shortcut == "none" or (shortcut in ("A", "B") and not changes_shape):
        return None
    if shortcut == "A":
        return ZeroPadShortcut(stride, out_channels - in_channels, shortcut_pad)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), make_norm(norm, out_channels)
    )


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias whose padding keeps the size (up to the stride); `groups` > 1 makes it grouped."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups,
                     bias=False)


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
        norm: str = "bn", shortcut: str = "B", style: str = "pytorch", shortcut_pad: str = "append",
        cardinality: int = 1, base_width: int = BASE_WIDTH,
    ):
        if cardinality != 1 or base_width != BASE_WIDTH:
            raise ValueError(f"basic blocks support only cardinality=1 and base_width={BASE_WIDTH}, got "
                             f"cardinality={cardinality!r}, base_width={base_width!r}; ResNeXt and wide ResNets need "
                             "block='bottleneck'")
        out_channels = planes * self.expansion
        downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm, shortcut_pad)
        super().__init__(shortcut != "none", downsample)
        self.conv1 = conv3x3(in_channels, planes, stride, first_dilation or dilation)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = conv3x3(planes, out_channels, dilation=dilation)
        self.bn2 = make_norm(norm, out_channels)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4); `style` puts the stride on the 3x3 ("pytorch") or the first 1x1 ("caffe").

    The 1x1 reduction and the 3x3 have int(planes * base_width / 64) * cardinality channels, the 3x3 in `cardinality`
    groups: planes for ResNets, 2 x planes for ResNeXt-50 32x4d and wide ResNets.
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1, first_dilation: int | None = None,
        norm: str = "bn", shortcut: str = "B", style: str = "pytorch", shortcut_pad: str = "append",
        cardinality: int = 1, base_width: int = BASE_WIDTH,
    ):
        if style not in STYLES:
            raise ValueError(f"style={style!r} is not supported; choose one of {', '.join(STYLES)}")
        out_channels = planes * self.expansion
        downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm, shortcut_pad)
        super().__init__(shortcut != "none", downsample)
        stride_1x1, stride_3x3 = (stride, 1) if style == "caffe" else (1, stride)
        width = int(planes * base_width / BASE_WIDTH) * cardinality
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride_1x1, bias=False)
        self.bn1 = make_norm(norm, width)
        self.conv2 = conv3x3(width, width, stride_3x3, first_dilation or dilation, groups=cardinality)
        self.bn2 = make_norm(norm, width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = make_norm(norm, out_channels)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
