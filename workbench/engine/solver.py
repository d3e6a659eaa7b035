"""SGD with linear warm-up and multi-step or cosine decay, in iterations (detectron2's solver, torch parts)."""
import math

import torch
from torch import nn

from workbench.errors import UserError

WARMUP_METHODS = ("linear", "constant")


def build_optimizer(model: nn.Module, solver: dict) -> torch.optim.Optimizer:
    """SGD over the trainable parameters; norm layers and biases get `weight_decay_norm`."""
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                (no_decay if is_norm or name == "bias" else decay).append(param)
    groups = [dict(params=decay, weight_decay=solver["weight_decay"]),
              dict(params=no_decay, weight_decay=solver["weight_decay_norm"])]
    return torch.optim.SGD(groups, lr=solver["lr"], momentum=solver["momentum"], nesterov=solver["nesterov"])


def lr_factor(iteration: int, solver: dict) -> float:
    """The multiplier of the base learning rate at `iteration`: warm-up times the decay schedule.

    Warm-up ramps linearly from `warmup_factor` to 1 ("linear", detectron2's) or stays at `warmup_factor`
    ("constant": the paper's ResNet-110 on CIFAR trains at 0.01 for 400 iterations, then at 0.1).
    """
    if solver["warmup_method"] not in WARMUP_METHODS:
        raise UserError(f"solver.warmup_method={solver['warmup_method']!r} is not supported; choose one of "
                         f"{', '.join(WARMUP_METHODS)}")
    warmup = 1.0
    if iteration < solver["warmup_iters"]:
        alpha = iteration / solver["warmup_iters"] if solver["warmup_method"] == "linear" else 0.0
        warmup = solver["warmup_factor"] * (1 - alpha) + alpha
    if solver["schedule"] == "multistep":
        decay = solver["gamma"] ** sum(iteration >= step for step in solver["steps"])
    elif solver["schedule"] == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * min(iteration, solver["max_iter"]) / solver["max_iter"]))
    else:
        raise UserError(f"solver.schedule={solver['schedule']!r} is not supported; choose 'multistep' or 'cosine'")
    return warmup * decay


def build_scheduler(optimizer: torch.optim.Optimizer, solver: dict) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration LambdaLR following `lr_factor` (which checks the schedule names first)."""
    lr_factor(0, solver)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, solver))
