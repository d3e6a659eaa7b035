"""Feature maps of the stem and the stages: timm's `feature_info` (timm's own `FeatureInfo`) and the
`features_only` wrapper."""
from collections.abc import Sequence

import torch
from timm.models import FeatureInfo
from torch import nn

from .freeze import freeze_stages
from .fuse import FusedStages, foldable, needs_grad
from .grad_checkpoint import run_stage
from .memory_format import is_channels_last


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


def feature_take_indices(num_maps: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """The maps that timm's `forward_intermediates` / `prune_intermediate_layers` take, and the last one needed.

    Args:
        num_maps: maps the model can return (the stem and every stage).
        indices: None for all; an int n for the last n; a sequence of indices (negative ones count from the end),
            kept in its order and with its repeats, as in timm.

    Returns:
        The non-negative indices and the largest of them.
    """
    if indices is None:
        indices = num_maps
    if isinstance(indices, int):
        if not 0 < indices <= num_maps:
            raise ValueError(f"indices={indices} asks for the last {indices} maps; this model has 1..{num_maps}")
        take = list(range(num_maps - indices, num_maps))
    else:
        take = []
        for i in indices:
            if not isinstance(i, int) or not -num_maps <= i < num_maps:
                raise ValueError(f"indices contains {i!r}; valid indices are 0..{num_maps - 1} (negative from the end)")
            take.append(i % num_maps)
        if not take:
            raise ValueError("indices is empty; pass None for every map or an int n for the last n")
    return take, max(take)


def check_output_fmt(output_fmt: str) -> None:
    """Raises ValueError unless `output_fmt` is "NCHW", the only layout of a convnet's intermediate maps."""
    if output_fmt != "NCHW":
        raise ValueError(f"output_fmt={output_fmt!r} is not supported; ResNet feature maps are 'NCHW' only")


class FeatureExtractor(nn.Module):
    """A ResNet cut after its last selected stage, returning the selected maps as a list (timm's `features_only`).

    The modules keep their names (`conv1 bn1 layer1 ...`), so checkpoints of the whole model load with strict=False
    and those of this wrapper load unchanged.

    By default (`set_fused`) blocks whose BatchNorm uses running statistics (frozen BN, or any BN in eval mode) and
    that record no gradients run with it folded into the convolutions, as `backbones.fuse.FusedStages` describes:
    in eval, and in frozen stages while training. Maps come back in the input's memory format and agree with the
    unfused path within float rounding. The folded (on CPU packed) weights are kept for the next call
    (`fused_cache_bytes`: in eval as much as the weights themselves) and dropped by `train()` and `eval()`.

    `torch.jit.script` compiles the unfused path only (`_scripted_forward`); the fused path is eager Python.
    """

    __jit_unused_properties__ = ["fused_cache_bytes"]

    def __init__(self, model: nn.Module, out_indices: Sequence[int]):
        super().__init__()
        if not hasattr(model, "bn1"):
            raise TypeError(f"FeatureExtractor runs post-activation ResNets (conv1, bn1, relu stem); for a "
                            f"{type(model).__name__} use backbones.feature_extractor_for(model, out_indices)")
        out_indices = check_out_indices(out_indices, len(model.feature_info))
        self.feature_info = FeatureInfo(model.feature_info.info, out_indices)
        self.out_indices = list(out_indices)  # feature_info.out_indices, as TorchScript can read them
        self.pretrained_cfg = model.pretrained_cfg
        self.grad_checkpointing = model.grad_checkpointing
        self.conv1, self.bn1, self.relu, self.maxpool = model.conv1, model.bn1, model.relu, model.maxpool
        self.stage_names = [info["module"] for info in model.feature_info.info[1 : out_indices[-1] + 1]]
        for name in self.stage_names:
            self.add_module(name, getattr(model, name))
        self.fused = True
        self._fusion = FusedStages()

    def set_fused(self, enable: bool = True, channels_last: bool | None = None) -> "FeatureExtractor":
        """Turns BatchNorm folding (and the oneDNN fusions that come with it) on or off.

        Args:
            enable: fold where safe (the default) or always run the modules as they are.
            channels_last: None (default): CPU float32 maps channels-last, others as they come (see
                `backbones.fuse.FusedStages.to_preferred_format`); True / False: always / never.
        """
        self.fused = enable
        self._fusion = FusedStages(channels_last)
        return self

    @property
    def fused_cache_bytes(self) -> int:
        """Memory held by the folded weights of the fused path."""
        return self._fusion.cached_bytes

    def train(self, mode: bool = True) -> "FeatureExtractor":
        self._fusion.clear()
        return super().train(mode)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recomputes stage activations in the backward pass to save memory."""
        self.grad_checkpointing = enable

    def freeze(self, frozen_stages: int) -> "FeatureExtractor":
        """Freezes the stem and stages 1..`frozen_stages`; see `backbones.freeze.freeze_stages`."""
        return freeze_stages(self, frozen_stages)

    def _fusion_applies(self) -> bool:
        if not self.fused or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return False
        return not torch.compiler.is_compiling()

    def _forward_fused(self, x: torch.Tensor) -> list[torch.Tensor]:
        fusion = self._fusion
        memory_format = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        convert = fusion.to_preferred_format if foldable(self.bn1) else (lambda t, grad: t)
        x = fusion.stem(self.conv1, self.bn1, convert(x, needs_grad((self.conv1, self.bn1), x)))
        outputs = [x] if 0 in self.feature_info.out_indices else []
        x = self.maxpool(x)
        for index, name in enumerate(self.stage_names, start=1):
            stage = getattr(self, name)
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = run_stage(stage, x, True)
            else:
                converted = convert(x, needs_grad((stage,), x))
                if converted is not x and outputs and outputs[-1] is x and converted.is_contiguous(
                        memory_format=memory_format):
                    outputs[-1], owned = converted, False  # returned as it is read: one copy of the map, not two
                else:
                    owned = converted is not x or not any(x is o for o in outputs)
                x = fusion.stage(name, stage, converted, x_owned=owned)
            if index in self.feature_info.out_indices:
                outputs.append(x)
        return [o.contiguous(memory_format=memory_format) for o in outputs]

    def _scripted_forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The unfused forward as TorchScript compiles it: it cannot look a module up by a computed name, but it
        unrolls a loop over the children (grad checkpointing does not apply)."""
        x = self.relu(self.bn1(self.conv1(x)))
        outputs = [x] if 0 in self.out_indices else []
        x = self.maxpool(x)
        index = 0
        for name, child in self.named_children():
            if name in self.stage_names:
                index += 1
                x = child(x)
                if index in self.out_indices:
                    outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if torch.jit.is_scripting():
            return self._scripted_forward(x)
        if self._fusion_applies():
            return self._forward_fused(x)
        x = self.relu(self.bn1(self.conv1(x)))
        outputs = [x] if 0 in self.feature_info.out_indices else []
        x = self.maxpool(x)
        for index, name in enumerate(self.stage_names, start=1):
            x = run_stage(getattr(self, name), x, self.grad_checkpointing)
            if index in self.feature_info.out_indices:
                outputs.append(x)
        return outputs
