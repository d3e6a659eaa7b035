"""The C4 detector parts of the paper's Faster R-CNN (detectron2's Res5ROIHeads).

The RPN and a 14x14 RoIAlign work on C4 (stride 16); the res5 stage (layer4, whose first block has stride 2:
14 -> 7) followed by average pooling is the box head. Mask R-CNN C4 runs the same res5 module on the mask RoIs,
then a 2x2 stride-2 deconv, ReLU and a 1x1 conv per class give 14x14 masks (torchvision's MaskRCNNPredictor).
Pre-activation nets' res5 ends on a raw residual sum: their final norm and ReLU follow it in both heads.
"""
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from backbones import ResNetV2, feature_extractor_for

from ..ops.roi_align import MultiScaleRoIAlign

C4_STAGE = 3
RES5 = "layer4"
ROI_RESOLUTION = 14
SAMPLING_RATIO = 2
# Options of `build_parts` a user may set, for boxes and for masks.
BOX_OPTIONS = ("anchor_sizes", "aspect_ratios", "roi_align_aligned", "roi_sampling_ratio")
MASK_OPTIONS = ("mask_head_channels",)


class BackboneC4(nn.Module):
    """The ResNet up to C4, returning the one map "0" that torchvision's RPN and RoI pooling read.

    Args:
        body: a features-only ResNet whose last output is C4.
    """

    __jit_unused_properties__ = ["pretrained_cfg"]

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.out_channels = body.feature_info.channels()[-1]

    @property
    def pretrained_cfg(self) -> dict:
        """The backbone's pretrained config (input normalisation included)."""
        return self.body.pretrained_cfg

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps: dict[str, torch.Tensor] = OrderedDict()
        maps["0"] = self.body(x)[-1]
        return maps


class Res5Head(nn.Module):
    """The box head of C4 detectors: res5 on the pooled RoIs, then global average pooling.

    Args:
        res5: the ResNet's last stage.
        final_norm: a pre-activation net's final norm, applied with a ReLU after res5; None for other nets.
        pool: average the maps (the box head); False returns them (the mask head of pre-activation nets).
    """

    def __init__(self, res5: nn.Module, final_norm: nn.Module | None = None, pool: bool = True):
        super().__init__()
        self.res5 = res5
        self.norm = final_norm
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res5(x)
        if self.norm is not None:
            x = F.relu(self.norm(x))
        return x.mean(dim=(2, 3)) if self.pool else x


def build_parts(
    resnet: nn.Module, *, num_classes: int, with_masks: bool, anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), mask_head_channels: int = 256, roi_align_aligned: bool = False,
    roi_sampling_ratio: int = SAMPLING_RATIO,
) -> dict[str, nn.Module]:
    """Cuts `resnet` (weights already loaded) into C4 backbone and res5 head and builds the RPN and RoI head parts.

    The mask head is the box head's res5 module itself (shared weights), so a state dict lists res5's tensors twice,
    under `roi_heads.box_head.res5.` and `roi_heads.mask_head.` (pre-activation nets: `roi_heads.mask_head.res5.`,
    with their final norm under `roi_heads.box_head.norm.` and `roi_heads.mask_head.norm.`).

    Args:
        resnet: the whole ResNet, weights loaded and stages frozen.
        num_classes: classes including the background.
        with_masks: also build the mask branch.
        anchor_sizes: the anchor sizes, all on the single C4 level.
        aspect_ratios: anchor aspect ratios (height / width).
        mask_head_channels: channels of the mask deconv.
        roi_align_aligned: box and mask RoIAlign with the half-pixel offset (detectron2's ROIAlignV2); False is
            torchvision's.
        roi_sampling_ratio: samples per bin along each axis of box and mask RoIAlign; 0 adapts them to each RoI
            (detectron2's POOLER_SAMPLING_RATIO 0).

    Returns:
        The keyword arguments `backbone`, `rpn_anchor_generator`, `rpn_head`, `box_roi_pool`, `box_head`,
        `box_predictor` (and the `mask_*` ones) of torchvision's FasterRCNN / MaskRCNN.
    """
    backbone = BackboneC4(feature_extractor_for(resnet, (C4_STAGE,)))
    res5 = getattr(resnet, RES5)
    final_norm = resnet.norm if isinstance(resnet, ResNetV2) else None
    res5_channels = resnet.feature_info.channels(C4_STAGE + 1)
    anchors = AnchorGenerator((tuple(anchor_sizes),), (tuple(aspect_ratios),))
    parts = dict(
        backbone=backbone,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0]),
        box_roi_pool=MultiScaleRoIAlign(["0"], ROI_RESOLUTION, roi_sampling_ratio, aligned=roi_align_aligned),
        box_head=Res5Head(res5, final_norm),
        box_predictor=FastRCNNPredictor(res5_channels, num_classes),
    )
    if with_masks:
        parts.update(
            mask_roi_pool=MultiScaleRoIAlign(["0"], ROI_RESOLUTION, roi_sampling_ratio, aligned=roi_align_aligned),
            mask_head=res5 if final_norm is None else Res5Head(res5, final_norm, pool=False),
            mask_predictor=MaskRCNNPredictor(res5_channels, mask_head_channels, num_classes),
        )
    return parts
