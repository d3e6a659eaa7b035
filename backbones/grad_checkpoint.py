"""Gradient checkpointing of a stage, block by block, that leaves BatchNorm statistics as without it.

Recomputing a block in the backward pass would update BatchNorm running statistics a second time; the recomputation
here runs with momentum 0 and restores the batch counter, so outputs, gradients and buffers all match a plain forward.
"""
import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def _frozen_statistics(module: nn.Module):
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


class _RecomputeOnce:
    """Calls `block`; every call after the first (the recomputation) leaves its statistics alone."""

    def __init__(self, block: nn.Module):
        self.block = block
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            return self.block(x)
        with _frozen_statistics(self.block):
            return self.block(x)


def run_stage(stage: nn.Sequential, x: torch.Tensor, grad_checkpointing: bool) -> torch.Tensor:
    """Runs the blocks of `stage`, checkpointing each when asked and when gradients are being recorded."""
    if not (grad_checkpointing and torch.is_grad_enabled()):
        return stage(x)
    for block in stage:
        x = checkpoint(_RecomputeOnce(block), x, use_reentrant=False)
    return x
