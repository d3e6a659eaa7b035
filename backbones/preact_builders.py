"""Registered builders of the pre-activation ResNets (He et al. 2016): timm's ResNetV2 for ImageNet (weights load
from timm's checkpoints unchanged) and the paper's CIFAR nets."""
from torch import nn

from .builders import _create_resnet
from .preact import ResNetV2
from .registry import register_backbone


def _imagenet(arch: str, pretrained, block: str, layers: tuple[int, ...], **kwargs) -> nn.Module:
    model_args = dict(block=block, layers=layers)
    return _create_resnet(arch, pretrained, model_args=model_args, model_cls=ResNetV2, **kwargs)


def _cifar(arch: str, pretrained, block: str, n: int, **kwargs) -> nn.Module:
    """A CIFAR net of 16/32/64 planes: basic blocks with option-A shortcuts (6n+2 layers, as the 2015 paper's), or
    bottlenecks with projections and the stride on the first 1x1 (9n+2 layers, as the 2016 paper's code)."""
    if block == "bottleneck":
        kwargs.setdefault("style", "caffe")
    shortcut = "A" if block == "basic" else "B"
    model_args = dict(block=block, layers=(n, n, n), widths=(16, 32, 64), stem="cifar", shortcut=shortcut)
    return _create_resnet(arch, pretrained, model_args=model_args, model_cls=ResNetV2, **kwargs)


@register_backbone
def resnetv2_18(pretrained=False, **kwargs) -> nn.Module:
    """Pre-activation ResNet-18 (basic blocks, [2, 2, 2, 2]); timm's resnetv2_18."""
    return _imagenet("resnetv2_18", pretrained, "basic", (2, 2, 2, 2), **kwargs)


@register_backbone
def resnetv2_34(pretrained=False, **kwargs) -> nn.Module:
    """Pre-activation ResNet-34 (basic blocks, [3, 4, 6, 3]); timm's resnetv2_34."""
    return _imagenet("resnetv2_34", pretrained, "basic", (3, 4, 6, 3), **kwargs)


@register_backbone
def resnetv2_50(pretrained=False, **kwargs) -> nn.Module:
    """Pre-activation ResNet-50 (bottlenecks, [3, 4, 6, 3]); timm's resnetv2_50."""
    return _imagenet("resnetv2_50", pretrained, "bottleneck", (3, 4, 6, 3), **kwargs)


@register_backbone
def resnetv2_101(pretrained=False, **kwargs) -> nn.Module:
    """Pre-activation ResNet-101 (bottlenecks, [3, 4, 23, 3]); timm's resnetv2_101."""
    return _imagenet("resnetv2_101", pretrained, "bottleneck", (3, 4, 23, 3), **kwargs)


@register_backbone
def resnetv2_152(pretrained=False, **kwargs) -> nn.Module:
    """Pre-activation ResNet-152 (bottlenecks, [3, 8, 36, 3]); timm's resnetv2_152."""
    return _imagenet("resnetv2_152", pretrained, "bottleneck", (3, 8, 36, 3), **kwargs)


@register_backbone
def preact_resnet110_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR pre-activation ResNet-110 (basic blocks, n=18, option A)."""
    return _cifar("preact_resnet110_cifar", pretrained, "basic", 18, **kwargs)


@register_backbone
def preact_resnet164_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR pre-activation ResNet-164 (bottlenecks, n=18): 1.7M parameters as the paper counts them."""
    return _cifar("preact_resnet164_cifar", pretrained, "bottleneck", 18, **kwargs)


@register_backbone
def preact_resnet1001_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR pre-activation ResNet-1001 (bottlenecks, n=111): 10.2M parameters as the paper counts them (weights
    without BatchNorm's); set_grad_checkpointing() keeps a third of its activation memory."""
    return _cifar("preact_resnet1001_cifar", pretrained, "bottleneck", 111, **kwargs)
