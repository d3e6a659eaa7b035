"""Where each stage of a ResNet strides or dilates for a wanted output stride: the one rule that the post- and
pre-activation nets share (torchvision's `replace_stride_with_dilation`, detectron2's DC5), and the stem convolution
and stages built by it."""
from collections.abc import Sequence

from torch import nn

OUTPUT_STRIDES = (8, 16, 32)
STEMS = ("imagenet", "cifar")


def checked_output_stride(output_stride: int | None, num_stages: int, stem: str) -> int:
    """The output stride to build: `output_stride`, or the natural one when None; raises ValueError for others."""
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r} is not supported; choose 'imagenet' or 'cifar'")
    natural = 2 ** (num_stages - 1) * (4 if stem == "imagenet" else 1)
    if output_stride is None or output_stride == natural:
        return natural
    valid = OUTPUT_STRIDES if stem == "imagenet" else (natural,)
    if output_stride not in valid:
        raise ValueError(f"output_stride={output_stride!r} is not supported here; choose one of {valid}")
    return output_stride


def stage_layout(num_stages: int, stem: str, output_stride: int | None) -> list[dict[str, int]]:
    """Per stage: `stride` of its first block, `first_dilation` of that block's 3x3, `dilation` of the other 3x3s,
    and the `reduction` of its output. Stages past the output stride dilate instead of striding."""
    output_stride = checked_output_stride(output_stride, num_stages, stem)
    reduction, dilation = (4 if stem == "imagenet" else 1), 1
    layout = []
    for index in range(1, num_stages + 1):
        stride, first_dilation = (1 if index == 1 else 2), dilation
        if index > 1 and reduction >= output_stride:
            dilation, stride = dilation * stride, 1
        reduction *= stride
        layout.append(dict(stride=stride, first_dilation=first_dilation, dilation=dilation, reduction=reduction))
    return layout


def make_stem_conv(in_chans: int, width: int, stem: str) -> tuple[nn.Conv2d, nn.Module]:
    """The stem's convolution and pooling: 7x7/2 and a 3x3/2 max pool ("imagenet"), or a 3x3/1 and none ("cifar")."""
    if stem == "imagenet":
        return nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False), nn.MaxPool2d(3, stride=2, padding=1)
    return nn.Conv2d(in_chans, width, 3, stride=1, padding=1, bias=False), nn.Identity()


def add_stages(model: nn.Module, block_cls: type, in_channels: int, widths: Sequence[int], layers: Sequence[int],
               layout: list[dict[str, int]], stage_cls: type = nn.Sequential, **block_options) -> list[dict]:
    """Adds the stages `layer1..` of `block_cls` blocks to `model` as `layout` strides and dilates them; returns
    their feature_info entries.

    Args:
        in_channels: the stem's output channels.
        widths: planes of each stage (its output channels are planes x the block's expansion).
        layers: blocks per stage.
        block_options: passed to every block (norm, shortcut, style, ...).
    """
    info = []
    for index, (planes, depth, stage) in enumerate(zip(widths, layers, layout), start=1):
        blocks = []
        for b in range(depth):
            blocks.append(block_cls(
                in_channels, planes, stride=stage["stride"] if b == 0 else 1, dilation=stage["dilation"],
                first_dilation=stage["first_dilation"] if b == 0 else stage["dilation"], **block_options,
            ))
            in_channels = planes * block_cls.expansion
        model.add_module(f"layer{index}", stage_cls(*blocks))
        info.append(dict(num_chs=in_channels, reduction=stage["reduction"], module=f"layer{index}"))
    return info
