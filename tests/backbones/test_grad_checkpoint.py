"""`run_stage` on a stage whose saved tensors are known, which also checks the measure the gradient checkpointing tests
use (`train_step`, tests/backbones/conftest.py): without checkpointing autograd keeps two maps per block, with it the
block's input only, and each block runs again in the backward pass."""
import pytest
import torch
from torch import nn

from backbones.grad_checkpoint import run_stage

BLOCKS = 5


class Sines(nn.Module):
    """sin(sin(x)), for which autograd keeps x and sin(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sin().sin()


class OneStage(nn.Module):
    def __init__(self, grad_checkpointing: bool):
        super().__init__()
        self.layer1 = nn.Sequential(*(Sines() for _ in range(BLOCKS)))
        self.grad_checkpointing = grad_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 2 * x: the first block's input is made by the forward, as a stem's output is
        return run_stage(self.layer1, 2 * x, self.grad_checkpointing)


@pytest.mark.parametrize("grad_checkpointing,maps_per_block,calls", [(False, 2, 1), (True, 1, 2)])
def test_run_stage_keeps_the_block_inputs_only_and_recomputes_each_block(grad_checkpointing, maps_per_block, calls,
                                                                          train_step):
    x = torch.randn(1000, requires_grad=True)
    step = train_step(OneStage(grad_checkpointing), x)
    assert step.kept_bytes == maps_per_block * BLOCKS * x.nbytes
    assert step.block_calls == {f"layer1.{i}": calls for i in range(BLOCKS)}
