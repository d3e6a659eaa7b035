"""Registered builders of the ResNet family and the one place that applies weights, freezing and `features_only`."""
import os
from collections.abc import Sequence

from torch import nn

from .conventions import ARCHITECTURE_OPTIONS, conventions
from .feature_extractors import feature_extractor_for
from .normalization import in_unit_range
from .hub import download_weights
from .pretrained import PRETRAINED_CFGS, cifar_cfg, imagenet_cfg
from .registry import register_backbone
from .resnet import ResNet
from .weights import detect_format, load_weights, read_weights

MODEL_OPTIONS = (
    "num_classes", "in_chans", "style", "shortcut", "shortcut_pad", "norm", "output_stride", "global_pool", "drop_rate",
)
# Every option of `create_backbone` besides the weights (`pretrained`, `pretrained_cfg_overlay`).
CREATE_OPTIONS = MODEL_OPTIONS + ("features_only", "out_indices", "frozen_stages")


def resolve_pretrained_cfg(arch: str, tag: str | None, cifar: bool) -> dict:
    """The config of `arch.tag`, of the default tag when `tag` is None, or a weightless default.

    The CIFAR nets have no default tag: their plain names build the nets trained here (option A appends its zero
    channels), while their only published weights (`akamaster_cifar10`) need another architecture and normalisation.
    """
    tags = PRETRAINED_CFGS.get(arch, {})
    if tag is None:
        tag = "" if cifar else next(iter(tags), "")
    cfg = dict(tags[tag]) if tag else (cifar_cfg() if cifar else imagenet_cfg())
    return dict(cfg, architecture=arch, tag=tag)


def _no_default_weights(arch: str) -> str:
    """Why `pretrained=True` has nothing to load for `arch`, and what to pass instead."""
    tags = ", ".join(f"{arch}.{tag}" for tag in PRETRAINED_CFGS.get(arch, {}))
    if tags:
        return f"{arch} has no default pretrained weights; name a tag ({tags}) or pass a file"
    return (f"no pretrained weights are registered for {arch}; pass a file: "
            f"create_backbone({arch!r}, pretrained='/path/to/weights.pth')")


def _create_resnet(
    arch: str, pretrained: bool | str | os.PathLike, *, model_args: dict, pretrained_tag: str | None = None,
    features_only: bool = False, out_indices: Sequence[int] | None = None, frozen_stages: int = -1,
    pretrained_cfg_overlay: dict | None = None, model_cls: type[nn.Module] = ResNet, **kwargs,
) -> nn.Module:
    unknown = sorted(set(kwargs) - set(MODEL_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {arch}; valid options: "
                         f"{', '.join(CREATE_OPTIONS)}")
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects feature maps and needs features_only=True")
    cfg = resolve_pretrained_cfg(arch, pretrained_tag, model_args.get("stem") == "cifar")
    origin = os.fspath(pretrained) if isinstance(pretrained, (str, os.PathLike)) else None
    if pretrained and not origin and not cfg["tag"]:
        raise ValueError(_no_default_weights(arch))
    state_dict, stated = read_weights(origin) if origin else (None, {})
    if origin:
        cfg = conventions(cfg, detect_format(state_dict, origin), origin, pretrained_tag is not None, kwargs, stated)
    cfg = in_unit_range(dict(cfg, **(pretrained_cfg_overlay or {})))
    for option in ARCHITECTURE_OPTIONS:
        kwargs.setdefault(option, cfg[option])
    kwargs.setdefault("num_classes", cfg["num_classes"])
    model = model_cls(**{**model_args, **kwargs})
    model.pretrained_cfg = dict(cfg, **{option: kwargs[option] for option in ARCHITECTURE_OPTIONS})  # as built

    if origin:
        load_weights(model, state_dict, origin=origin)
    elif pretrained:
        load_weights(model, download_weights(f"{arch}.{cfg['tag']}", cfg))
    model.freeze(frozen_stages)
    if features_only:
        model = feature_extractor_for(model, range(len(model.feature_info)) if out_indices is None else out_indices)
    return model


def _imagenet(arch: str, pretrained, block: str, layers: tuple[int, ...], shortcut: str = "B", **kwargs) -> nn.Module:
    model_args = dict(block=block, layers=layers, shortcut=shortcut)
    return _create_resnet(arch, pretrained, model_args=model_args, **kwargs)


def _wide_or_grouped(arch: str, pretrained, layers: tuple[int, ...], cardinality: int, base_width: int,
                     **kwargs) -> nn.Module:
    """A bottleneck ResNet whose 3x3 convolutions are grouped (ResNeXt) or wider (wide ResNets)."""
    model_args = dict(block="bottleneck", layers=layers, cardinality=cardinality, base_width=base_width)
    return _create_resnet(arch, pretrained, model_args=model_args, **kwargs)


def _cifar(arch: str, pretrained, n: int, shortcut: str = "A", **kwargs) -> nn.Module:
    model_args = dict(block="basic", layers=(n, n, n), widths=(16, 32, 64), stem="cifar", shortcut=shortcut)
    return _create_resnet(arch, pretrained, model_args=model_args, **kwargs)


@register_backbone
def resnet18(pretrained=False, **kwargs) -> nn.Module:
    """ResNet-18 (basic blocks, [2, 2, 2, 2])."""
    return _imagenet("resnet18", pretrained, "basic", (2, 2, 2, 2), **kwargs)


@register_backbone
def resnet34(pretrained=False, **kwargs) -> nn.Module:
    """ResNet-34 (basic blocks, [3, 4, 6, 3])."""
    return _imagenet("resnet34", pretrained, "basic", (3, 4, 6, 3), **kwargs)


@register_backbone
def resnet50(pretrained=False, **kwargs) -> nn.Module:
    """ResNet-50 (bottlenecks, [3, 4, 6, 3])."""
    return _imagenet("resnet50", pretrained, "bottleneck", (3, 4, 6, 3), **kwargs)


@register_backbone
def resnet101(pretrained=False, **kwargs) -> nn.Module:
    """ResNet-101 (bottlenecks, [3, 4, 23, 3])."""
    return _imagenet("resnet101", pretrained, "bottleneck", (3, 4, 23, 3), **kwargs)


@register_backbone
def resnet152(pretrained=False, **kwargs) -> nn.Module:
    """ResNet-152 (bottlenecks, [3, 8, 36, 3])."""
    return _imagenet("resnet152", pretrained, "bottleneck", (3, 8, 36, 3), **kwargs)


@register_backbone
def resnext50_32x4d(pretrained=False, **kwargs) -> nn.Module:
    """ResNeXt-50 32x4d (Xie et al. 2017): ResNet-50 with 3x3 convolutions in 32 groups of 4 channels (at planes=64)."""
    return _wide_or_grouped("resnext50_32x4d", pretrained, (3, 4, 6, 3), cardinality=32, base_width=4, **kwargs)


@register_backbone
def resnext101_32x4d(pretrained=False, **kwargs) -> nn.Module:
    """ResNeXt-101 32x4d: ResNet-101 with 3x3 convolutions in 32 groups of 4 channels (at planes=64)."""
    return _wide_or_grouped("resnext101_32x4d", pretrained, (3, 4, 23, 3), cardinality=32, base_width=4, **kwargs)


@register_backbone
def resnext101_32x8d(pretrained=False, **kwargs) -> nn.Module:
    """ResNeXt-101 32x8d: ResNet-101 with 3x3 convolutions in 32 groups of 8 channels (at planes=64)."""
    return _wide_or_grouped("resnext101_32x8d", pretrained, (3, 4, 23, 3), cardinality=32, base_width=8, **kwargs)


@register_backbone
def resnext101_64x4d(pretrained=False, **kwargs) -> nn.Module:
    """ResNeXt-101 64x4d: ResNet-101 with 3x3 convolutions in 64 groups of 4 channels (at planes=64)."""
    return _wide_or_grouped("resnext101_64x4d", pretrained, (3, 4, 23, 3), cardinality=64, base_width=4, **kwargs)


@register_backbone
def wide_resnet50_2(pretrained=False, **kwargs) -> nn.Module:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): ResNet-50 with each bottleneck's 1x1 reduction and 3x3 twice as
    wide."""
    return _wide_or_grouped("wide_resnet50_2", pretrained, (3, 4, 6, 3), cardinality=1, base_width=128, **kwargs)


@register_backbone
def wide_resnet101_2(pretrained=False, **kwargs) -> nn.Module:
    """Wide ResNet-101-2: ResNet-101 with each bottleneck's 1x1 reduction and 3x3 twice as wide."""
    return _wide_or_grouped("wide_resnet101_2", pretrained, (3, 4, 23, 3), cardinality=1, base_width=128, **kwargs)


@register_backbone
def plain18(pretrained=False, **kwargs) -> nn.Module:
    """Plain-18: ResNet-18's layers without shortcuts."""
    return _imagenet("plain18", pretrained, "basic", (2, 2, 2, 2), shortcut="none", **kwargs)


@register_backbone
def plain34(pretrained=False, **kwargs) -> nn.Module:
    """Plain-34: ResNet-34's layers without shortcuts."""
    return _imagenet("plain34", pretrained, "basic", (3, 4, 6, 3), shortcut="none", **kwargs)


@register_backbone
def plain50(pretrained=False, **kwargs) -> nn.Module:
    """Plain-50: ResNet-50's layers without shortcuts."""
    return _imagenet("plain50", pretrained, "bottleneck", (3, 4, 6, 3), shortcut="none", **kwargs)


@register_backbone
def resnet20_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR ResNet-20 (n=3, option A)."""
    return _cifar("resnet20_cifar", pretrained, 3, **kwargs)


@register_backbone
def resnet32_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR ResNet-32 (n=5, option A)."""
    return _cifar("resnet32_cifar", pretrained, 5, **kwargs)


@register_backbone
def resnet44_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR ResNet-44 (n=7, option A)."""
    return _cifar("resnet44_cifar", pretrained, 7, **kwargs)


@register_backbone
def resnet56_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR ResNet-56 (n=9, option A)."""
    return _cifar("resnet56_cifar", pretrained, 9, **kwargs)


@register_backbone
def resnet110_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR ResNet-110 (n=18, option A)."""
    return _cifar("resnet110_cifar", pretrained, 18, **kwargs)


@register_backbone
def resnet1202_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR ResNet-1202 (n=200, option A); set_grad_checkpointing() keeps a quarter of its activation memory."""
    return _cifar("resnet1202_cifar", pretrained, 200, **kwargs)


@register_backbone
def plain20_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR plain-20 (n=3, no shortcuts)."""
    return _cifar("plain20_cifar", pretrained, 3, shortcut="none", **kwargs)


@register_backbone
def plain32_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR plain-32 (n=5, no shortcuts)."""
    return _cifar("plain32_cifar", pretrained, 5, shortcut="none", **kwargs)


@register_backbone
def plain44_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR plain-44 (n=7, no shortcuts)."""
    return _cifar("plain44_cifar", pretrained, 7, shortcut="none", **kwargs)


@register_backbone
def plain56_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR plain-56 (n=9, no shortcuts)."""
    return _cifar("plain56_cifar", pretrained, 9, shortcut="none", **kwargs)


@register_backbone
def plain110_cifar(pretrained=False, **kwargs) -> nn.Module:
    """CIFAR plain-110 (n=18, no shortcuts)."""
    return _cifar("plain110_cifar", pretrained, 18, shortcut="none", **kwargs)
