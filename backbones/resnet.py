"""The ResNet family of He et al. 2015 (Table 1 and the CIFAR nets of Section 4.2), following timm's model contract.

Module names are torchvision's (`conv1 bn1 layer1..layer4 fc`), so torchvision and timm checkpoints load unchanged.
"""
from collections.abc import Sequence

import torch
from torch import nn

from .blocks import BASE_WIDTH, BLOCKS, SHORTCUT_PADS, SHORTCUTS, STYLES
from .classifier import ClassifierModel
from .features import FeatureInfo, check_output_fmt, feature_take_indices
from .freeze import freeze_stages
from .grad_checkpoint import run_stage
from .norm import make_norm
from .stage_layout import add_stages, make_stem_conv, stage_layout


class ResNet(ClassifierModel):
    """ResNet or plain net (shortcut="none") for ImageNet-sized (`stem="imagenet"`) or CIFAR (`stem="cifar"`) input.

    Args:
        block: "basic" or "bottleneck".
        layers: number of blocks per stage.
        widths: planes of each stage (output channels are planes x block expansion).
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "cifar" (3x3/1 conv, no pool).
        num_classes: classifier outputs; 0 for none (pooled features).
        in_chans: input channels.
        style: "pytorch" (stride on the 3x3) or "caffe" (stride on the first 1x1); matters for bottlenecks only.
        shortcut: "A", "B", "C" or "none".
        shortcut_pad: where option A puts its zero channels: "append" (after the input's; models trained here) or
            "center" (half before, half after; akamaster/pytorch_resnet_cifar10's weights).
        norm: "bn", "frozen_bn", "sync_bn" or "gn".
        cardinality: groups of every bottleneck's 3x3 convolution (ResNeXt; timm's name, torchvision's `groups`).
        base_width: channels per group of the 3x3 at planes=64 (torchvision's `width_per_group`): 4 for ResNeXt 32x4d,
            128 for wide ResNets. Basic blocks take only cardinality=1 and base_width=64.
        output_stride: None for the natural stride (32; 4 for CIFAR nets), or 16 / 8 by dilating the last one / two
            stages (ImageNet stem only).
        global_pool: "avg", "max" or "" (no pooling: forward returns the unpooled map).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self, block: str, layers: Sequence[int], *, widths: Sequence[int] = (64, 128, 256, 512), stem: str = "imagenet",
        num_classes: int = 1000, in_chans: int = 3, style: str = "pytorch", shortcut: str = "B", norm: str = "bn",
        output_stride: int | None = None, global_pool: str = "avg", drop_rate: float = 0.0,
        shortcut_pad: str = "append", cardinality: int = 1, base_width: int = BASE_WIDTH,
    ):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"style={style!r} is not supported; choose one of {', '.join(STYLES)}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={shortcut!r} is not supported; choose one of {', '.join(SHORTCUTS)}")
        if shortcut_pad not in SHORTCUT_PADS:
            valid = ", ".join(SHORTCUT_PADS)
            raise ValueError(f"shortcut_pad={shortcut_pad!r} is not supported; choose one of {valid}")
        if cardinality < 1 or base_width < 1:
            raise ValueError(f"cardinality={cardinality!r} and base_width={base_width!r} must both be at least 1")
        layout = stage_layout(len(layers), stem, output_stride)
        block_cls = BLOCKS[block]
        self.grad_checkpointing = False
        self.drop_rate = drop_rate

        self.conv1, self.maxpool = make_stem_conv(in_chans, widths[0], stem)
        self.bn1 = make_norm(norm, widths[0])
        self.relu = nn.ReLU(inplace=True)
        info = [dict(num_chs=widths[0], reduction=2 if stem == "imagenet" else 1, module="relu")]
        info += add_stages(self, block_cls, widths[0], widths, layers, layout, norm=norm, shortcut=shortcut,
                           style=style, shortcut_pad=shortcut_pad, cardinality=cardinality, base_width=base_width)
        in_channels = info[-1]["num_chs"]
        self.stage_names = [f"layer{i}" for i in range(1, len(layers) + 1)]
        self.feature_info = FeatureInfo(info, range(len(info)))
        self.num_features = in_channels
        self.global_pool_type = ""
        self.reset_classifier(num_classes, global_pool)
        self._init_weights()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recomputes stage activations in the backward pass to save memory; results are unchanged."""
        self.grad_checkpointing = enable

    def freeze(self, frozen_stages: int) -> "ResNet":
        """Freezes the stem and stages 1..`frozen_stages`; see `backbones.freeze.freeze_stages`."""
        return freeze_stages(self, frozen_stages)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's unpooled map."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        if torch.jit.is_scripting():
            return self._scripted_stages(x)
        for name in self.stage_names:
            x = run_stage(getattr(self, name), x, self.grad_checkpointing)
        return x

    def _scripted_stages(self, x: torch.Tensor) -> torch.Tensor:
        """The stages in order, as TorchScript compiles them: it cannot look a module up by a computed name, but it
        unrolls a loop over the children (grad checkpointing does not apply)."""
        for name, child in self.named_children():
            if name in self.stage_names:
                x = child(x)
        return x

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
        stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The maps of the stem (index 0) and of the stages (1..), as timm's `forward_intermediates`.

        Args:
            x: input images.
            indices: None for every map, an int n for the last n, or a sequence of indices (negative from the end).
            norm: accepted for timm's signature; a ResNet has no final norm to apply.
            stop_early: stop after the last stage that `indices` needs (the returned final map is then that stage's).
            output_fmt: "NCHW", the only layout of a convnet's maps.
            intermediates_only: return the selected maps only.

        Returns:
            The selected maps in forward order, preceded by the final map (`forward_features`' output, or the last
            map computed with `stop_early`) unless `intermediates_only`.
        """
        check_output_fmt(output_fmt)
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        x = self.relu(self.bn1(self.conv1(x)))
        intermediates = [x] if 0 in take_indices else []
        x = self.maxpool(x)
        stage_names = self.stage_names[:max_index] if stop_early else self.stage_names
        for index, name in enumerate(stage_names, start=1):
            x = run_stage(getattr(self, name), x, self.grad_checkpointing)
            if index in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True,
    ) -> list[int]:
        """Empties the stages after the last map `indices` selects, as timm's `prune_intermediate_layers`.

        The pruned stages become empty nn.Sequential (the max pool nn.Identity when only the stem's map is kept);
        when stages go, `num_features` becomes the last kept map's channels and the classifier goes too.

        Args:
            indices: the maps to keep, as in `forward_intermediates`.
            prune_norm: accepted for timm's signature; a ResNet has no final norm.
            prune_head: remove the pooling and the classifier (`forward_head` then returns its input).

        Returns:
            The kept indices, non-negative.
        """
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for name in self.stage_names[max_index:]:
            setattr(self, name, nn.Sequential())
        if max_index == 0:
            self.maxpool = nn.Identity()
        stages_pruned = max_index < len(self.stage_names)
        if stages_pruned:
            self.num_features = self.feature_info[max_index]["num_chs"]
        if prune_head or stages_pruned:
            self.reset_classifier(0, "")
        return take_indices
