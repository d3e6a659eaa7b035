"""Feature maps of the stem and the stages: timm's `feature_info` and the `features_only` wrapper."""
from collections.abc import Sequence

import torch
from torch import nn

from .freeze import freeze_stages
from .grad_checkpoint import run_stage


class FeatureInfo:
    """Channels, reduction (stride) and module name of each feature map a model can return, as in timm.

    Args:
        info: one dict per available map, with keys `num_chs`, `reduction`, `module`.
        out_indices: the maps selected for output.
    """

    def __init__(self, info: list[dict], out_indices: Sequence[int]):
        self.info = info
        self.out_indices = tuple(out_indices)

    def _select(self, key: str, idx: int | Sequence[int] | None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, Sequence):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def channels(self, idx: int | Sequence[int] | None = None):
        """Channels of the selected maps (or of map `idx`)."""
        return self._select("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None):
        """Strides relative to the input of the selected maps (or of map `idx`)."""
        return self._select("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None):
        """Names of the modules producing the selected maps (or map `idx`)."""
        return self._select("module", idx)

    def get_dicts(self) -> list[dict]:
        """The info dicts of the selected maps."""
        return [dict(self.info[i]) for i in self.out_indices]

    def __getitem__(self, idx: int) -> dict:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self):
        return iter(self.info)


def check_out_indices(out_indices: Sequence[int], num_maps: int) -> tuple[int, ...]:
    """Validates stage indices (negative ones count from the end) and returns them non-negative and sorted."""
    resolved = []
    for i in out_indices:
        if not isinstance(i, int) or not -num_maps <= i < num_maps:
            raise ValueError(f"out_indices contains {i!r}; valid indices are 0..{num_maps - 1} (negative from the end)")
        resolved.append(i % num_maps)
    if not resolved or len(set(resolved)) != len(resolved):
        raise ValueError(f"out_indices={tuple(out_indices)} must be non-empty and without repeats")
    return tuple(sorted(resolved))


class FeatureExtractor(nn.Module):
    """A ResNet cut after its last selected stage, returning the selected maps as a list (timm's `features_only`).

    The modules keep their names (`conv1 bn1 layer1 ...`), so checkpoints of the whole model load with strict=False
    and those of this wrapper load unchanged.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int]):
        super().__init__()
        out_indices = check_out_indices(out_indices, len(model.feature_info))
        self.feature_info = FeatureInfo(model.feature_info.info, out_indices)
        self.pretrained_cfg = model.pretrained_cfg
        self.grad_checkpointing = model.grad_checkpointing
        self.conv1, self.bn1, self.relu, self.maxpool = model.conv1, model.bn1, model.relu, model.maxpool
        self.stage_names = [info["module"] for info in model.feature_info.info[1 : out_indices[-1] + 1]]
        for name in self.stage_names:
            self.add_module(name, getattr(model, name))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recomputes stage activations in the backward pass to save memory."""
        self.grad_checkpointing = enable

    def freeze(self, frozen_stages: int) -> "FeatureExtractor":
        """Freezes the stem and stages 1..`frozen_stages`; see `backbones.freeze.freeze_stages`."""
        return freeze_stages(self, frozen_stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        outputs = [x] if 0 in self.feature_info.out_indices else []
        x = self.maxpool(x)
        for index, name in enumerate(self.stage_names, start=1):
            x = run_stage(getattr(self, name), x, self.grad_checkpointing)
            if index in self.feature_info.out_indices:
                outputs.append(x)
        return outputs
