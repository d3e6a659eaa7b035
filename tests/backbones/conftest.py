"""What a training step of a backbone keeps for its backward pass and how often it runs each block, for the gradient
checkpointing tests."""
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class MadeStorages(TorchDispatchMode):
    """Weak references to the storage of every tensor an operator makes while active (views and in-place results
    share their input's, counted once)."""

    def __init__(self):
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.layout == torch.strided:
                storage = tensor.untyped_storage()
                # two live storages never share an address: a later one there replaces a freed one
                self.storages[storage.data_ptr()] = StorageWeakRef(storage), storage.nbytes()
        return out

    def alive_bytes(self) -> int:
        """Bytes of the recorded storages that are still allocated."""
        return sum(nbytes for ref, nbytes in self.storages.values() if not ref.expired())


def blocks_of(model: nn.Module) -> dict[str, nn.Module]:
    """The residual blocks of `model` by name: the children of its stages `layer1`, `layer2`, ..."""
    return {f"{name}.{index}": block for name, stage in model.named_children() if name.startswith("layer")
            for index, block in enumerate(stage)}


@dataclass
class Step:
    """One training step: `output`; `kept_bytes`, what the forward made and the backward freed (the activations
    autograd kept for it, the output excluded); `block_calls`, how often each block ran (twice where recomputed)."""

    output: torch.Tensor | list[torch.Tensor]
    kept_bytes: int
    block_calls: Counter


def sum_of_squares(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    return sum(t.square().sum() for t in tree_leaves(output))


def training_step(model: nn.Module, x: torch.Tensor, loss: Callable = sum_of_squares) -> Step:
    """Runs `model` on `x` and the backward pass of `loss` of its output."""
    calls = Counter(dict.fromkeys(blocks_of(model), 0))
    hooks = [block.register_forward_pre_hook(lambda module, args, name=name: calls.update([name]))
             for name, block in blocks_of(model).items()]
    with MadeStorages() as made:
        output = model(x)
    alive = made.alive_bytes()
    loss(output).backward()
    for hook in hooks:
        hook.remove()
    return Step(output, alive - made.alive_bytes(), calls)


@pytest.fixture
def train_step():
    """`train_step(model, x, loss=sum_of_squares)`: a `Step` of `model` on `x` (see `training_step`)."""
    return training_step
