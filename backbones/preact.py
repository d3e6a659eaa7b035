"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks"), following timm's model
contract and its ResNetV2 structure.

Each block computes `x + F(relu(bn(x)))`: the BatchNorm-ReLU comes before every convolution, the shortcut stays an
identity, and a projection shortcut (where the shape changes) reads the activated input, as the paper's code and
timm's ResNetV2 do. The stem is a bare convolution (and max pool); the network ends with a final BatchNorm-ReLU
(`norm`, `act`) before pooling. The stages' outputs are therefore raw residual sums, normalised only by the next
block or the final norm.

Module names are torchvision's where they exist (`conv1 layer1..layer4 fc`, block norms `norm1..norm3` before
`conv1..conv3`, `downsample` a bare 1x1 convolution); `backbones.weights.formats.timm_v2` renames timm's ResNetV2 checkpoints
(`stem.conv`, `stages.N.blocks.M`, `head.fc`) to them.
"""
from collections.abc import Sequence

import torch
from torch import nn

from .blocks import STYLES, ZeroPadShortcut, conv3x3
from .classifier import ClassifierModel
from .features import FeatureInfo, check_out_indices, check_output_fmt, feature_take_indices
from .freeze import freeze_stages
from .grad_checkpoint import run_stage
from .norm import make_norm
from .stage_layout import add_stages, make_stem_conv, stage_layout

PREACT_SHORTCUTS = ("A", "B", "C")


def make_preact_shortcut(
    shortcut: str, in_channels: int, out_channels: int, stride: int, shortcut_pad: str
) -> nn.Module | None:
    """The shortcut of one pre-activation block; None is the identity.

    Args:
        shortcut: "A" zero-padding identity where the shape changes, "B" 1x1 projection where the shape changes,
            "C" projection always.
        shortcut_pad: where option A puts its zero channels (see `backbones.blocks.ZeroPadShortcut`).
    """
    if shortcut not in PREACT_SHORTCUTS:
        raise ValueError(f"shortcut={shortcut!r} is not supported by pre-activation nets; choose one of "
                         f"{', '.join(PREACT_SHORTCUTS)}")
    changes_shape = stride != 1 or in_channels != out_channels
    if shortcut != "C" and not changes_shape:
        return None
    if shortcut == "A":
        return ZeroPadShortcut(stride, out_channels - in_channels, shortcut_pad)
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PreActBlock(nn.Module):
    """Shared forward of both block kinds: BN-ReLU of the input, the residual branch on it, plus the shortcut.

    The shortcut is the raw input (identity, or option A's zero padding of it) or a projection of the activated input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, shortcut: str, shortcut_pad: str):
        super().__init__()
        self.norm1 = make_norm(norm, in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_preact_shortcut(shortcut, in_channels, out_channels, stride, shortcut_pad)
        self.projects = isinstance(self.downsample, nn.Conv2d)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.norm1(x))
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(activated if self.projects else x)
        out = self.branch(activated)
        out += shortcut
        return out


class PreActBasicBlock(PreActBlock):
    """BN-ReLU-3x3, BN-ReLU-3x3 (ResNet-18/34, CIFAR ResNet-110)."""

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1, first_dilation: int | None = None,
        norm: str = "bn", shortcut: str = "B", shortcut_pad: str = "append", style: str = "pytorch",
    ):
        super().__init__(in_channels, planes, stride, norm, shortcut, shortcut_pad)
        self.conv1 = conv3x3(in_channels, planes, stride, first_dilation or dilation)
        self.norm2 = make_norm(norm, planes)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.norm2(self.conv1(x))))


class PreActBottleneck(PreActBlock):
    """BN-ReLU-1x1 reduce, BN-ReLU-3x3, BN-ReLU-1x1 expand (x4); `style` puts the stride on the 3x3 ("pytorch",
    timm) or on the first 1x1 ("caffe", the paper's code)."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1, first_dilation: int | None = None,
        norm: str = "bn", shortcut: str = "B", shortcut_pad: str = "append", style: str = "pytorch",
    ):
        super().__init__(in_channels, planes * self.expansion, stride, norm, shortcut, shortcut_pad)
        stride_1x1, stride_3x3 = (stride, 1) if style == "caffe" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=stride_1x1, bias=False)
        self.norm2 = make_norm(norm, planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3, first_dilation or dilation)
        self.norm3 = make_norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.conv2(self.relu(self.norm2(out)))
        return self.conv3(self.relu(self.norm3(out)))


PREACT_BLOCKS = {"basic": PreActBasicBlock, "bottleneck": PreActBottleneck}


class PreActStage(nn.Sequential):
    """The blocks of one stage; with `grad_checkpointing` they are recomputed in the backward pass, one by one, with
    unchanged results (`backbones.grad_checkpoint.run_stage`)."""

    def __init__(self, *blocks: nn.Module):
        super().__init__(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return self._checkpointed(x)
        for block in self:
            x = block(x)
        return x

    @torch.jit.unused
    def _checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        return run_stage(self, x, True)


def stages_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, stage) pairs of `model` in order: its children named `layer1`, `layer2`, ..."""
    return [(name, child) for name, child in model.named_children() if name.startswith("layer")]


class ResNetV2(ClassifierModel):
    """Pre-activation ResNet for ImageNet-sized (`stem="imagenet"`) or CIFAR (`stem="cifar"`) input.

    Args:
        block: "basic" or "bottleneck".
        layers: number of blocks per stage.
        widths: planes of each stage (output channels are planes x block expansion); the stem has widths[0].
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "cifar" (3x3/1 conv, no pool).
        num_classes: classifier outputs; 0 for none (pooled features).
        in_chans: input channels.
        style: "pytorch" (stride on the 3x3) or "caffe" (stride on the first 1x1); matters for bottlenecks only.
        shortcut: "A", "B" or "C".
        shortcut_pad: where option A puts its zero channels: "append" or "center".
        norm: "bn", "frozen_bn", "sync_bn" or "gn".
        output_stride: None for the natural stride (32; 4 for CIFAR nets), or 16 / 8 by dilating the last one / two
            stages (ImageNet stem only).
        global_pool: "avg", "max" or "" (no pooling: forward returns the unpooled map).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self, block: str, layers: Sequence[int], *, widths: Sequence[int] = (64, 128, 256, 512), stem: str = "imagenet",
        num_classes: int = 1000, in_chans: int = 3, style: str = "pytorch", shortcut: str = "B",
        shortcut_pad: str = "append", norm: str = "bn", output_stride: int | None = None, global_pool: str = "avg",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if block not in PREACT_BLOCKS:
            raise ValueError(f"block={block!r} is not supported; choose one of {', '.join(PREACT_BLOCKS)}")
        if style not in STYLES:
            raise ValueError(f"style={style!r} is not supported; choose one of {', '.join(STYLES)}")
        layout = stage_layout(len(layers), stem, output_stride)
        block_cls = PREACT_BLOCKS[block]
        self.drop_rate = drop_rate
        self.conv1, self.maxpool = make_stem_conv(in_chans, widths[0], stem)
        info = [dict(num_chs=widths[0], reduction=2 if stem == "imagenet" else 1, module="conv1")]
        info += add_stages(self, block_cls, widths[0], widths, layers, layout, PreActStage, norm=norm,
                           shortcut=shortcut, shortcut_pad=shortcut_pad, style=style)
        in_channels = info[-1]["num_chs"]
        self.norm = make_norm(norm, in_channels)
        self.act = nn.ReLU(inplace=True)
        self.feature_info = FeatureInfo(info, range(len(info)))
        self.num_features = in_channels
        self.global_pool_type = ""
        self.reset_classifier(num_classes, global_pool)
        self._init_weights()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recomputes stage activations in the backward pass to save memory; results are unchanged."""
        for _, stage in stages_of(self):
            stage.grad_checkpointing = enable

    def freeze(self, frozen_stages: int) -> "ResNetV2":
        """Freezes the stem and stages 1..`frozen_stages`; see `backbones.freeze.freeze_stages`. The final norm is
        the head's: it stays trainable."""
        return freeze_stages(self, frozen_stages)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map after the final BN-ReLU, unpooled."""
        x = self.maxpool(self.conv1(x))
        for name, child in self.named_children():  # the stages; a loop TorchScript unrolls
            if name.startswith("layer"):
                x = child(x)
        return self.act(self.norm(x))

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False, stop_early: bool = False,
        output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The maps of the stem (0: its convolution, before the max pool) and of the stages (1..), as timm's.

        Args:
            x: input images.
            indices: None for every map, an int n for the last n, or a sequence of indices.
            norm: apply the final BN-ReLU to the last stage's map (the only map it is sized for).
            stop_early: skip the stages after the last map taken.
            output_fmt: "NCHW" only.
            intermediates_only: return the maps only.

        Returns:
            The maps in stage order, or (forward_features' output, the maps); after `stop_early` before the last
            stage the first item is the last stage run's raw output.
        """
        check_output_fmt(output_fmt)
        take, last_taken = feature_take_indices(len(self.feature_info), indices)
        stages = stages_of(self)
        x = self.conv1(x)
        intermediates = [x] if 0 in take else []
        x = self.maxpool(x)
        ran = 0
        for ran, (_, stage) in enumerate(stages[:last_taken] if stop_early else stages, start=1):
            x = stage(x)
            if ran in take:
                intermediates.append(self.act(self.norm(x)) if norm and ran == len(stages) else x)
        if intermediates_only:
            return intermediates
        if ran == len(stages):
            x = self.act(self.norm(x))
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True,
    ) -> list[int]:
        """Removes what `forward_intermediates(indices=indices)` does not need, as timm's.

        The stages after the last map taken go, and with them the final norm (sized for the last stage) and the
        classifier; `prune_norm` / `prune_head` remove those two anyway. Taking the stem map only drops the max pool.

        Returns:
            The indices taken, non-negative.
        """
        take, last_taken = feature_take_indices(len(self.feature_info), indices)
        stages = stages_of(self)
        prune_end = last_taken < len(stages)
        if prune_norm or prune_end:
            self.norm, self.act = nn.Identity(), nn.Identity()
        for name, _ in stages[last_taken:]:
            delattr(self, name)
        if last_taken == 0:
            self.maxpool = nn.Identity()
        if prune_end:
            self.num_features = self.feature_info[last_taken]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take


class PreActFeatures(nn.Module):
    """A pre-activation ResNet cut after its last selected stage, returning the selected maps (timm's
    `features_only`).

    The maps are timm's ResNetV2 ones, those of `forward_intermediates`: 0 is the stem convolution's output (stride 2
    on ImageNet nets, before the max pool), k >= 1 stage k's output, the raw residual sum; the final norm is the
    classifier's and is left out. Nothing is folded: each BatchNorm comes before its convolution with a ReLU in
    between. The modules keep their names (`conv1 layer1 ...`), so checkpoints of the whole model load with
    strict=False and those of this wrapper unchanged.
    """

    def __init__(self, model: ResNetV2, out_indices: Sequence[int]):
        super().__init__()
        self.out_indices = list(check_out_indices(out_indices, len(model.feature_info)))
        self.feature_info = FeatureInfo(model.feature_info.info, self.out_indices)
        self.pretrained_cfg = model.pretrained_cfg
        self.conv1, self.maxpool = model.conv1, model.maxpool
        for info in model.feature_info.info[1 : self.out_indices[-1] + 1]:
            self.add_module(info["module"], getattr(model, info["module"]))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recomputes stage activations in the backward pass to save memory; results are unchanged."""
        for _, stage in stages_of(self):
            stage.grad_checkpointing = enable

    def freeze(self, frozen_stages: int) -> "PreActFeatures":
        """Freezes the stem and stages 1..`frozen_stages`; see `backbones.freeze.freeze_stages`."""
        return freeze_stages(self, frozen_stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv1(x)
        outputs = [x] if 0 in self.out_indices else []
        x = self.maxpool(x)
        index = 0
        for name, child in self.named_children():  # the stages; a loop TorchScript unrolls
            if name.startswith("layer"):
                index += 1
                x = child(x)
                if index in self.out_indices:
                    outputs.append(x)
        return outputs
