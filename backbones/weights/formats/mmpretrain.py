"""mmpretrain's format: torchvision names under `backbone.`, classifier `head.fc`; mmdet detectors (ResNet and
ResNeXt) are the same layout, with their `neck.`, `rpn_head.` and `roi_head.` ignored."""
from collections.abc import Mapping

from .heads import HEAD_PREFIXES


def is_mmpretrain(state_dict: Mapping) -> bool:
    return "backbone.conv1.weight" in state_dict


def rename_mmpretrain(key: str) -> str | None:
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    if key.startswith(HEAD_PREFIXES):
        return None
    return key.removeprefix("backbone.")
