"""The ResNet family of He et al. 2015 (Table 1 and the CIFAR nets of Section 4.2), following timm's model contract.

Module names are torchvision's (`conv1 bn1 layer1..layer4 fc`), so torchvision and timm checkpoints load unchanged.
"""
from collections.abc import Sequence

import torch
from torch import nn

from .blocks import BLOCKS, SHORTCUTS, STYLES
from .features import FeatureInfo
from .freeze import freeze_stages
from .grad_checkpoint import run_stage
from .norm import make_norm

OUTPUT_STRIDES = (8, 16, 32)


class ResNet(nn.Module):
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
        norm: "bn", "frozen_bn", "sync_bn" or "gn".
        output_stride: None for the natural stride (32; 4 for CIFAR nets), or 16 / 8 by dilating the last one / two
            stages (ImageNet stem only).
        global_pool: "avg", "max" or "" (no pooling: forward returns the unpooled map).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self, block: str, layers: Sequence[int], *, widths: Sequence[int] = (64, 128, 256, 512), stem: str = "imagenet",
        num_classes: int = 1000, in_chans: int = 3, style: str = "pytorch", shortcut: str = "B", norm: str = "bn",
        output_stride: int | None = None, global_pool: str = "avg", drop_rate: float = 0.0,
    ):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"style={style!r} is not supported; choose one of {', '.join(STYLES)}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={shortcut!r} is not supported; choose one of {', '.join(SHORTCUTS)}")
        natural_stride = 2 ** (len(layers) - 1) * (4 if stem == "imagenet" else 1)
        output_stride = output_stride or natural_stride
        if output_stride != natural_stride and (stem != "imagenet" or output_stride not in OUTPUT_STRIDES):
            valid = OUTPUT_STRIDES if stem == "imagenet" else (natural_stride,)
            raise ValueError(f"output_stride={output_stride!r} is not supported here; choose one of {valid}")
        block_cls = BLOCKS[block]
        self.grad_checkpointing = False
        self.drop_rate = drop_rate

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, widths[0], 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            stride = 4
        elif stem == "cifar":
            self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
            stride = 1
        else:
            raise ValueError(f"stem={stem!r} is not supported; choose 'imagenet' or 'cifar'")
        self.bn1 = make_norm(norm, widths[0])
        self.relu = nn.ReLU(inplace=True)
        info = [dict(num_chs=widths[0], reduction=stride // 2 if stem == "imagenet" else 1, module="relu")]

        in_channels, dilation = widths[0], 1
        for index, (planes, depth) in enumerate(zip(widths, layers), start=1):
            stage_stride = 1 if index == 1 else 2
            first_dilation = dilation
            if index > 1 and stride >= output_stride:
                dilation, stage_stride = dilation * stage_stride, 1
            stride *= stage_stride
            blocks = []
            for b in range(depth):
                blocks.append(block_cls(
                    in_channels, planes, stride=stage_stride if b == 0 else 1, dilation=dilation,
                    first_dilation=first_dilation if b == 0 else dilation, norm=norm, shortcut=shortcut, style=style,
                ))
                in_channels = planes * block_cls.expansion
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            info.append(dict(num_chs=in_channels, reduction=stride, module=f"layer{index}"))
        self.stage_names = [f"layer{i}" for i in range(1, len(layers) + 1)]
        self.feature_info = FeatureInfo(info, range(len(info)))
        self.num_features = in_channels
        self.global_pool_type = ""
        self.reset_classifier(num_classes, global_pool)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        """The final linear layer (nn.Identity when there are no classes)."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        """Replaces the classifier by a fresh one with `num_classes` outputs (0: none) after `global_pool` pooling."""
        pools = {"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1), "": nn.Identity()}
        if global_pool not in pools:
            raise ValueError(f"global_pool={global_pool!r} is not supported; choose one of 'avg', 'max', ''")
        if num_classes and not global_pool:
            raise ValueError("a classifier needs pooled features: pass global_pool='avg' or 'max' with num_classes > 0")
        self.num_classes = num_classes
        self.global_pool_type = global_pool
        self.global_pool = pools[global_pool]
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recomputes stage activations in the backward pass to save memory; results are unchanged."""
        self.grad_checkpointing = enable

    def freeze(self, frozen_stages: int) -> "ResNet":
        """Freezes the stem and stages 1..`frozen_stages`; see `backbones.freeze.freeze_stages`."""
        return freeze_stages(self, frozen_stages)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's unpooled map."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = run_stage(getattr(self, name), x, self.grad_checkpointing)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pools (unless global_pool="") and classifies; `pre_logits` stops before the classifier."""
        x = self.global_pool(x)
        if self.global_pool_type:
            x = torch.flatten(x, 1)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
