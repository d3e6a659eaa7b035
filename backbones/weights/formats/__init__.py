"""The formats of ResNet weights, detected from their keys, and their renaming to torchvision's names.

Formats (detected from the keys, not from the file name):

- "torchvision": torchvision and timm classifiers (`conv1 bn1 layer1..layer4 fc`), and torchvision detectors, whose
  backbone sits under `backbone.body.` (our C4 detectors keep layer4 under `roi_heads.box_head.res5.`).
- "detectron2", "caffe2": detectron2's backbones and detectors, and the MSRA / FAIR ImageNet weights as Detectron
  ships them (`formats.detectron2` says how their names and BatchNorm become ours).
- "mmpretrain": torchvision names under `backbone.`, classifier `head.fc`; mmdet detectors (ResNet and ResNeXt) are
  the same layout, with their `neck.`, `rpn_head.` and `roi_head.` ignored.
- "akamaster": the CIFAR ResNets of akamaster/pytorch_resnet_cifar10 (torchvision names, classifier `linear`, saved
  from DataParallel in torch's legacy non-zip format). Their option-A shortcuts put the zero channels on both sides
  of the input's, so they load only into models built with `shortcut_pad="center"` (the `akamaster_cifar10` tags).
- "timm_v2": timm's pre-activation ResNetV2 (`stem.conv`, `stages.0.blocks.0.norm1`, `downsample.conv`, `norm`, and
  `head.fc`, a 1x1 convolution that becomes our linear `fc`); our `ResNetV2` keeps torchvision's `conv1 layer1..4 fc`.

Keys of detector heads (RPN, RoI heads other than C4's res5, FPN) are ignored with a warning; `module.`, `model.` and
`_orig_mod.` prefixes shared by every key are stripped. Floating-point tensors of another precision (float16, bfloat16,
float64) are converted to the model's; integer or boolean tensors where the model holds floats are refused.
"""
from collections.abc import Callable, Mapping

import torch

from ..errors import CheckpointError
from .akamaster import is_akamaster, rename_akamaster
from .detectron2 import add_affine_statistics, is_caffe2, is_detectron2, rename_caffe2, rename_detectron2
from .mmpretrain import is_mmpretrain, rename_mmpretrain
from .timm_v2 import is_timm_v2, rename_timm_v2
from .torchvision import is_torchvision, rename_torchvision

# Prefixes that wrappers (DDP, Lightning-style modules, torch.compile) put in front of every key.
SHARED_PREFIXES = ("module.", "model.", "_orig_mod.")
FORMAT_EXAMPLES = ("torchvision conv1.weight, detectron2 stem.conv1.weight, Caffe2 conv1_w, "
                   "mmpretrain backbone.conv1.weight or timm ResNetV2 stem.conv.weight")
# The option-A zero-channel placement (`shortcut_pad`) that a format's checkpoints need, where it is not ours.
FORMAT_SHORTCUT_PADS = {"akamaster": "center"}

FORMATS: tuple[tuple[str, Callable[[Mapping], bool], Callable[[str], str | None]], ...] = (
    ("caffe2", is_caffe2, rename_caffe2),
    ("detectron2", is_detectron2, rename_detectron2),
    ("mmpretrain", is_mmpretrain, rename_mmpretrain),
    ("akamaster", is_akamaster, rename_akamaster),
    ("timm_v2", is_timm_v2, rename_timm_v2),
    ("torchvision", is_torchvision, rename_torchvision),
)


def convert_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Renames a state dict from any supported format to torchvision's names.

    Args:
        state_dict: Key to tensor, as `read_checkpoint` returns it.

    Returns:
        The renamed state dict and the detected format: "torchvision", "detectron2", "caffe2", "mmpretrain" or
        "akamaster".
        Keys of detector heads are dropped; keys the format does not know are kept unchanged, so that loading
        reports them as unexpected.

    Raises:
        CheckpointError: The format is not recognised; the message lists a few keys and the keys expected.
    """
    converted, name, _ = convert_with_ignored(state_dict)
    return converted, name


def detect_format(state_dict: Mapping[str, torch.Tensor], origin: str | None = None) -> str:
    """The format of a state dict (see `convert_state_dict`), from its keys.

    Raises:
        CheckpointError: The format is not recognised; the message names `origin` (when given), lists a few keys
            and the keys expected.
    """
    state_dict = strip_shared_prefixes(state_dict)
    name = next((name for name, detect, _ in FORMATS if detect(state_dict)), None)
    if name is None:
        raise CheckpointError(f"{f'cannot load {origin}: ' if origin else ''}not a ResNet checkpoint: found keys "
                              f"{', '.join(list(state_dict)[:6])}; expected a ResNet's ({FORMAT_EXAMPLES})")
    return name


def convert_with_ignored(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """`convert_state_dict`, plus the keys of detector heads it dropped."""
    state_dict = strip_shared_prefixes(state_dict)
    name = detect_format(state_dict)
    rename = next(rename for format_name, _, rename in FORMATS if format_name == name)
    converted, ignored = {}, []
    for key, value in state_dict.items():
        new_key = rename(key)
        if new_key is None:
            ignored.append(key)
        else:
            converted[new_key] = value
    if name == "caffe2":
        add_affine_statistics(converted)
    if name == "timm_v2" and converted.get("fc.weight", torch.empty(0)).dim() == 4:
        converted["fc.weight"] = converted["fc.weight"].flatten(1)  # timm's 1x1-convolution classifier
    return converted, name, ignored


def strip_shared_prefixes(state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """`state_dict` without the prefixes that every key shares from a wrapper (DataParallel / DDP's `module.`, a
    `model.` attribute, torch.compile's `_orig_mod.`), however nested."""
    prefix = next((p for p in SHARED_PREFIXES if state_dict and all(k.startswith(p) for k in state_dict)), None)
    if prefix is None:
        return state_dict
    return strip_shared_prefixes({k[len(prefix):]: v for k, v in state_dict.items()})
