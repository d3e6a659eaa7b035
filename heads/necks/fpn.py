"""The FPN detector parts: P2-P6 on C2-C5, one anchor size per level, RoIAlign on P2-P5, MLP or conv box head.

The module names are those of torchvision's `fasterrcnn_resnet50_fpn` / `maskrcnn_resnet50_fpn`, so their
checkpoints load unchanged.
"""
from collections.abc import Sequence
from functools import partial

from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from backbones.fpn import FPN_STAGES, fpn_from_backbone
from backbones.norm import make_norm

from ..ops.roi_align import MultiScaleRoIAlign

BOX_HEADS = ("2fc", "2conv1fc", "4conv1fc")
ROI_LEVELS = ["0", "1", "2", "3"]
BOX_RESOLUTION = 7
MASK_RESOLUTION = 14
SAMPLING_RATIO = 2
CONV_BOX_HEADS = {"2conv1fc": 2, "4conv1fc": 4}  # name: number of 3x3 convs
# Options of `build_parts` a user may set, for boxes and for masks.
BOX_OPTIONS = ("anchor_sizes", "aspect_ratios", "fpn_channels", "box_head", "representation_size", "roi_align_aligned",
               "roi_sampling_ratio")
MASK_OPTIONS = ("mask_head_channels", "mask_head_convs")


def make_box_head(box_head: str, channels: int, representation_size: int) -> nn.Module:
    """The box head on 7x7 RoIs: "2fc" (torchvision's TwoMLPHead), or "2conv1fc" / "4conv1fc" (two / four 3x3
    GroupNorm convs, then one fc: torchvision's FastRCNNConvFCHead).

    Raises:
        ValueError: `box_head` is not one of `BOX_HEADS`.
    """
    if box_head == "2fc":
        return TwoMLPHead(channels * BOX_RESOLUTION**2, representation_size)
    if box_head in CONV_BOX_HEADS:
        return FastRCNNConvFCHead((channels, BOX_RESOLUTION, BOX_RESOLUTION), [channels] * CONV_BOX_HEADS[box_head],
                                  [representation_size], norm_layer=partial(make_norm, "gn"))
    raise ValueError(f"box_head={box_head!r} is not supported; choose one of {', '.join(BOX_HEADS)}")


def build_parts(
    resnet: nn.Module, *, num_classes: int, with_masks: bool, anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), fpn_channels: int = 256, box_head: str = "2fc",
    representation_size: int = 1024, mask_head_channels: int = 256, mask_head_convs: int = 4,
    roi_align_aligned: bool = False, roi_sampling_ratio: int = SAMPLING_RATIO,
) -> dict[str, nn.Module]:
    """Puts an FPN on C2-C5 of `resnet` as `backbones.create_fpn_backbone` does and builds the RPN and RoI heads.

    Args:
        resnet: the whole ResNet, weights loaded and stages frozen.
        num_classes: classes including the background.
        with_masks: also build the mask branch.
        anchor_sizes: one anchor size per pyramid level P2-P6.
        aspect_ratios: anchor aspect ratios (height / width) at every level.
        fpn_channels: channels of every pyramid level.
        box_head: "2fc", "2conv1fc" or "4conv1fc".
        representation_size: width of the box head's fully connected layers.
        mask_head_channels: width of the mask head's convs and of its deconv.
        mask_head_convs: number of 3x3 convs of the mask head.
        roi_align_aligned: box and mask RoIAlign with the half-pixel offset (detectron2's ROIAlignV2); False is
            torchvision's.
        roi_sampling_ratio: samples per bin along each axis of box and mask RoIAlign; 0 adapts them to each RoI
            (detectron2's POOLER_SAMPLING_RATIO 0).

    Returns:
        The keyword arguments `backbone`, `rpn_anchor_generator`, `rpn_head`, `box_roi_pool`, `box_head`,
        `box_predictor` (and the `mask_*` ones) of torchvision's FasterRCNN / MaskRCNN.
    """
    backbone = fpn_from_backbone(resnet, out_indices=FPN_STAGES, out_channels=fpn_channels)
    num_levels = len(FPN_STAGES) + 1
    if len(anchor_sizes) != num_levels:
        raise ValueError(f"anchor_sizes={tuple(anchor_sizes)} must give one size per FPN level ({num_levels})")
    anchors = AnchorGenerator(tuple((size,) for size in anchor_sizes), (tuple(aspect_ratios),) * num_levels)
    parts = dict(
        backbone=backbone,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(fpn_channels, anchors.num_anchors_per_location()[0]),
        box_roi_pool=MultiScaleRoIAlign(ROI_LEVELS, BOX_RESOLUTION, roi_sampling_ratio,
                                        channels_last=box_head in CONV_BOX_HEADS, aligned=roi_align_aligned),
        box_head=make_box_head(box_head, fpn_channels, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
    )
    if with_masks:
        parts.update(
            mask_roi_pool=MultiScaleRoIAlign(ROI_LEVELS, MASK_RESOLUTION, roi_sampling_ratio, channels_last=True,
                                             aligned=roi_align_aligned),
            mask_head=MaskRCNNHeads(fpn_channels, [mask_head_channels] * mask_head_convs, 1),
            mask_predictor=MaskRCNNPredictor(mask_head_channels if mask_head_convs else fpn_channels,
                                             mask_head_channels, num_classes),
        )
    return parts
