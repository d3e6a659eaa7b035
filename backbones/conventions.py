"""The one place that decides the conventions of a set of weights: the architecture they were trained with (`style`,
option-A `shortcut_pad`) and the input they expect (`channel_order`, `pixel_range`, `mean`, `std`, evaluation sizes).

A tag states them (`backbones.pretrained`). A file given by path takes those its format implies where that is
unambiguous:

- "caffe2": detectron2's ImageNet files. MSRA's ResNets (`R-50.pkl`): caffe style, BGR, 0-255, mean subtraction
  only; FAIR's grouped ResNeXt (`X-101-32x8d.pkl`): pytorch style, BGR, 0-255, mean and std in those units.
- "akamaster": akamaster's CIFAR nets: `shortcut_pad="center"`, ImageNet mean and std.
- "timm_v2": timm's pre-activation ResNetV2: mean and std 0.5, bicubic.
- "torchvision", "mmpretrain": the architecture's own defaults (RGB, 0-1, ImageNet's mean and std; ours for the
  CIFAR nets), which is what torchvision, timm and mmpretrain write.

Our training checkpoints state the conventions of the model they were trained as (`conventions`, see
`stated_conventions`): those hold, whatever its format.

A "detectron2" backbone (`stem.conv1.weight`) does not say which of them it was trained on (an MSRA or a torchvision
initialisation), so it is refused unless a tag names them. Where a tag is given, the tag's conventions hold. An
architecture option the caller passes explicitly (`style="pytorch"` with an MSRA file, for a file converted by hand)
is kept, with a warning that names both; only the implicit defaults give way to the file.
"""
import logging

from torch import nn

from .weights.errors import CheckpointError
from .pretrained import PRETRAINED_CFGS, akamaster_cfg, fair_cfg, msra_cfg, timm_v2_cfg

logger = logging.getLogger(__name__)

ARCHITECTURE_OPTIONS = ("style", "shortcut_pad")
INPUT_FIELDS = ("channel_order", "pixel_range", "mean", "std")
CONVENTION_FIELDS = ARCHITECTURE_OPTIONS + INPUT_FIELDS
FAMILY_DEFAULTS = {  # format: its conventions for an architecture without a tag of that format
    "caffe2": lambda arch: fair_cfg("") if arch.startswith("resnext") else msra_cfg("", None),
    "akamaster": lambda arch: akamaster_cfg("", None),
    "timm_v2": lambda arch: timm_v2_cfg("", 0.9),
}
AMBIGUOUS_FORMATS = {
    "detectron2": "a detectron2 backbone does not say whether it was initialised from MSRA's Caffe weights (caffe "
                  "style, BGR, 0-255) or from torchvision's (RGB, 0-1)",
}


def format_cfg(arch: str, format_name: str) -> dict | None:
    """The conventions that a file of `format_name` implies for `arch`: its tag of that format, else the format's
    family default; None where the format keeps the architecture's defaults."""
    tags = PRETRAINED_CFGS.get(arch, {})
    tag = next((t for t, cfg in tags.items() if cfg["file_format"] == format_name), None)
    if tag is not None:
        return dict(tags[tag], architecture=arch, tag=tag)
    if format_name in FAMILY_DEFAULTS:
        return dict(FAMILY_DEFAULTS[format_name](arch), url="", hf_hub_id="", architecture=arch, tag="")
    return None


def stated_conventions(model: nn.Module) -> dict:
    """The conventions of `model`'s weights (`CONVENTION_FIELDS` of its `pretrained_cfg`), which our checkpoints save
    as `conventions` so that a file given by path builds the model they were trained as; empty without a config."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return {key: cfg[key] for key in CONVENTION_FIELDS if key in cfg}


def conventions(cfg: dict, format_name: str, origin: str, tag_given: bool, options: dict,
                stated: dict | None = None) -> dict:
    """The pretrained config of a model whose weights are the file `origin`, of `format_name`.

    Args:
        cfg: the config of the tag that was named, or of the architecture's default.
        tag_given: whether the caller named the tag (its conventions then hold).
        stated: the conventions the file states (`stated_conventions`, saved by our training); they hold where no
            tag is named.
        options: the architecture options the caller passed (`style`, `shortcut_pad`, ...); where one contradicts
            the weights' conventions, a warning names both (the caller's choice is built).

    Returns:
        The named tag's or the file format's conventions, with `file` and `file_format` saying what is loaded.

    Raises:
        CheckpointError: the format does not say its conventions and no tag names them.
    """
    arch = cfg["architecture"]
    implied = dict(cfg, **stated) if stated else format_cfg(arch, format_name)
    if tag_given:
        if implied is not None and _differences(cfg, implied):
            logger.warning("%s is a %s file, whose weights expect %s; keeping the conventions of the tag %s.%s: %s",
                           origin, format_name, _describe(implied), arch, cfg["tag"], _describe(cfg))
    elif format_name in AMBIGUOUS_FORMATS and not stated:
        raise CheckpointError(_ambiguous(arch, format_name, origin))
    elif implied is not None:
        cfg = implied
    if tag_given or implied is not None:
        for option in ARCHITECTURE_OPTIONS:
            if option in options and options[option] != cfg[option]:
                logger.warning("%s (%s format) was trained with %s=%r; building %s=%r as asked", origin,
                               format_name, option, cfg[option], option, options[option])
    return dict(cfg, file=origin, file_format=format_name)


def _differences(a: dict, b: dict) -> list[str]:
    return [key for key in CONVENTION_FIELDS if _as_tuple(a[key]) != _as_tuple(b[key])]


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _describe(cfg: dict) -> str:
    return (f"style={cfg['style']!r}, shortcut_pad={cfg['shortcut_pad']!r}, {cfg['channel_order']} pixels in "
            f"0-{cfg['pixel_range']:g}, mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}")


def _ambiguous(arch: str, format_name: str, origin: str) -> str:
    tags = [f"{arch}.{tag}" for tag in PRETRAINED_CFGS.get(arch, {})]
    fix = (f"name the tag whose conventions it has, e.g. create_backbone({tags[0]!r}, pretrained=...) "
           f"(tags: {', '.join(tags)})" if tags else f"{arch} has no tag that states them")
    return (f"{origin} is a {format_name} file: {AMBIGUOUS_FORMATS[format_name]}; {fix}, or load it into a model you "
            f"built with backbones.load_weights(model, path)")
