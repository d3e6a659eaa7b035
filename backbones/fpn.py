"""A Feature Pyramid Network over any registered backbone, in the shape torchvision's detectors expect."""
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from .feature_extractors import feature_extractor_for
from .packed_conv import PackedConv2d, packed_inference_applies
from .registry import create_backbone

# C2-C5, the stages torchvision's detectors put their FPN on.
FPN_STAGES = (1, 2, 3, 4)


class BackboneWithFPN(nn.Module):
    """`body` (a features-only backbone) followed by `fpn`; outputs maps "0".."k" and "pool", `out_channels` each.

    The attribute names are those of torchvision's BackboneWithFPN, so its detector checkpoints
    (`backbone.body.*`, `backbone.fpn.*`) load unchanged.
    """

    __jit_unused_properties__ = ["pretrained_cfg"]

    def __init__(self, body: nn.Module, out_channels: int = 256, extra_blocks: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            body.feature_info.channels(), out_channels,
            extra_blocks=LastLevelMaxPool() if extra_blocks is None else extra_blocks,
        )
        self.out_channels = out_channels

    @property
    def pretrained_cfg(self) -> dict:
        """The backbone's pretrained config (input normalisation included)."""
        return self.body.pretrained_cfg

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not torch.jit.is_scripting():
            if isinstance(self.fpn.inner_blocks[0][0], PackedConv2d) and packed_inference_applies(self, x):
                x = x.contiguous(memory_format=torch.channels_last)  # the packed FPN takes its maps channels-last
        maps: dict[str, torch.Tensor] = OrderedDict()
        for i, feature in enumerate(self.body(x)):
            maps[str(i)] = feature
        return self.fpn(maps)


def fpn_from_backbone(
    model: nn.Module, *, out_indices: Sequence[int] = FPN_STAGES, out_channels: int = 256,
    extra_blocks: nn.Module | None = None,
) -> BackboneWithFPN:
    """Cuts `model` after its last stage in `out_indices` and puts an FPN on those stages' maps.

    The one place FPN backbones are assembled: `create_fpn_backbone` and the detectors of `heads` both call it.

    Args:
        model: a whole registered backbone, weights already loaded and stages already frozen.
        out_indices: the stages feeding the FPN (C2-C5 by default).
        out_channels: channels of every pyramid level.
        extra_blocks: torchvision FPN extra block; LastLevelMaxPool (P6) by default.
    """
    return BackboneWithFPN(feature_extractor_for(model, out_indices), out_channels, extra_blocks)


def create_fpn_backbone(
    name: str, *, pretrained: bool | str = False, out_indices: Sequence[int] = FPN_STAGES, out_channels: int = 256,
    extra_blocks: nn.Module | None = None, **kwargs,
) -> BackboneWithFPN:
    """Creates backbone `name` and puts an FPN on its stages `out_indices` (C2-C5 by default).

    Args:
        name: a registered backbone name, with an optional pretrained tag.
        pretrained: as in `create_backbone`.
        out_indices: the stages feeding the FPN.
        out_channels: channels of every pyramid level.
        extra_blocks: torchvision FPN extra block; LastLevelMaxPool (P6) by default.
        **kwargs: further backbone options (frozen_stages, norm, ...).
    """
    model = create_backbone(name, pretrained=pretrained, **kwargs)
    return fpn_from_backbone(model, out_indices=out_indices, out_channels=out_channels, extra_blocks=extra_blocks)
