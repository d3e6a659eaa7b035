"""timm's pre-activation ResNetV2 format (`stem.conv`, `stages.0.blocks.0.norm1`, `downsample.conv`, `norm`, and
`head.fc`, a 1x1 convolution that becomes our linear `fc`); our `ResNetV2` keeps torchvision's `conv1 layer1..4 fc`."""
import re
from collections.abc import Mapping

TIMM_V2_BLOCK = re.compile(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)")


def is_timm_v2(state_dict: Mapping) -> bool:
    return "stem.conv.weight" in state_dict


def rename_timm_v2(key: str) -> str:
    if key.startswith("stem.conv."):
        return "conv1." + key[len("stem.conv."):]
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    if match := TIMM_V2_BLOCK.fullmatch(key):
        stage, block, rest = match.groups()
        return f"layer{int(stage) + 1}.{block}.{rest.replace('downsample.conv.', 'downsample.')}"
    return key
