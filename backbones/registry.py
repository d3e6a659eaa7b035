"""The timm-style registry: builders registered by name, created as `name` or `name.tag`."""
import difflib
import fnmatch
import os
from collections.abc import Callable, Sequence

from torch import nn

from .pretrained import PRETRAINED_CFGS

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator registering `builder(pretrained=False, **kwargs)` under its function name."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"a backbone named {name!r} is already registered")
    _BUILDERS[name] = builder
    return builder


def _all_names(pretrained: bool) -> list[str]:
    if not pretrained:
        return sorted(_BUILDERS)
    return sorted(f"{arch}.{tag}" for arch in _BUILDERS for tag in PRETRAINED_CFGS.get(arch, {}))


def list_backbones(filter: str | Sequence[str] = "", pretrained: bool = False) -> list[str]:
    """Registered names matching the fnmatch pattern(s) `filter`; with `pretrained`, every `name.tag` with weights."""
    patterns = [filter] if isinstance(filter, str) else list(filter)
    names = _all_names(pretrained)
    if not any(patterns):
        return names
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns if p)]


def split_name(name: str) -> tuple[str, str | None]:
    """Splits `arch.tag` and checks both exist; raises ValueError naming close matches otherwise."""
    arch, _, tag = name.partition(".")
    if arch not in _BUILDERS:
        close = difflib.get_close_matches(arch, _BUILDERS, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see backbones.list_backbones()"
        raise ValueError(f"unknown backbone {name!r}{hint}")
    tags = PRETRAINED_CFGS.get(arch, {})
    if tag and tag not in tags:
        valid = ", ".join(f"{arch}.{t}" for t in tags) or f"none ({arch} has no pretrained weights)"
        raise ValueError(f"unknown pretrained tag {tag!r} for {arch}; valid: {valid}")
    return arch, tag or None


def create_backbone(name: str, pretrained: bool | str | os.PathLike = False, **kwargs) -> nn.Module:
    """Creates the registered backbone `name` (`arch` or `arch.tag`).

    Args:
        name: a registered name, optionally with a pretrained tag (`resnet50.tv2_in1k`).
        pretrained: False; True to download (once, cached) the tag's weights; or the path of a local weights file in
            any supported format.
        **kwargs: model options: num_classes, features_only, out_indices, frozen_stages, norm, output_stride, style,
            shortcut, shortcut_pad, in_chans, global_pool, drop_rate; and, as timm's, `pretrained_cfg_overlay`:
            fields that replace the pretrained config's (e.g. the conventions a checkpoint states), the architecture
            options among them included.
    """
    arch, tag = split_name(name)
    if tag:
        kwargs["pretrained_tag"] = tag
    return _BUILDERS[arch](pretrained=pretrained, **kwargs)
