"""torchvision's format, which is ours: torchvision and timm classifiers (`conv1 bn1 layer1..layer4 fc`), and
torchvision detectors, whose backbone sits under `backbone.body.` (our C4 detectors keep layer4 under
`roi_heads.box_head.res5.`)."""
from collections.abc import Mapping

from .heads import HEAD_PREFIXES

# Where torchvision-named detectors keep the ResNet: the body (FPN, C4 up to layer3), and res5 of our C4 detectors.
# Pre-activation C4 detectors also keep the final norm under `roi_heads.box_head.norm.`.
TORCHVISION_BACKBONE = {
    "backbone.body.": "", "roi_heads.box_head.res5.": "layer4.", "roi_heads.box_head.norm.": "norm.",
}


def is_torchvision(state_dict: Mapping) -> bool:
    return any(k in state_dict for k in ("conv1.weight", "backbone.body.conv1.weight"))


def rename_torchvision(key: str) -> str | None:
    for prefix, module in TORCHVISION_BACKBONE.items():
        if key.startswith(prefix):
            return module + key[len(prefix):]
    return None if key.startswith(HEAD_PREFIXES) else key
