"""Which memory layout a map is in."""
import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether `x` is a 4-d map stored channels-last (and not also contiguous, as a 1x1 or single-channel map is)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
