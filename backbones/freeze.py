"""Freezing the stem and the first stages of a ResNet, as detection fine-tuning does (mmdet's `frozen_stages`)."""
from torch import nn

from .norm import freeze_batchnorm


def stage_modules(model: nn.Module, stage: int) -> list[nn.Module]:
    """The modules of stage `stage`: 0 is the stem (conv1, and bn1 unless the net is pre-activation), k >= 1 is
    `layer{k}`."""
    if stage == 0:
        return [model.conv1, model.bn1] if hasattr(model, "bn1") else [model.conv1]
    return [getattr(model, f"layer{stage}")]


def freeze_stages(model: nn.Module, frozen_stages: int) -> nn.Module:
    """Stops gradients in the stem and stages 1..`frozen_stages`, and turns their BatchNorm into frozen BatchNorm.

    Args:
        model: a ResNet or its features-only wrapper (modules named `conv1 bn1 layer1 ...`; pre-activation nets have
            no `bn1`).
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and stages 1..k.

    Returns:
        `model`, changed in place.
    """
    num_stages = sum(1 for name, _ in model.named_children() if name.startswith("layer"))
    if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= num_stages:
        raise ValueError(f"frozen_stages={frozen_stages!r} is out of range; valid values are -1..{num_stages}")
    for stage in range(frozen_stages + 1):
        for module in stage_modules(model, stage):
            for param in module.parameters():
                param.requires_grad_(False)
        if stage > 0:
            freeze_batchnorm(getattr(model, f"layer{stage}"))
        elif hasattr(model, "bn1"):
            model.bn1 = freeze_batchnorm(model.bn1)
    return model
