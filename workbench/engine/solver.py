"""SGD with linear warm-up and multi-step or cosine decay, in iterations (detectron2's solver, torch parts), and the
paper's warm-up of very deep CIFAR nets, which ends when the measured training error is low enough."""
import math

import torch
from torch import nn

from workbench.errors import UserError

WARMUP_METHODS = ("linear", "constant")
TRAIN_ACCURACY = "train/top1"  # the logged training top-1 (%) that `ErrorWarmup` reads


class ErrorWarmup:
    """The paper's warm-up of ResNet-110 on CIFAR: "we use 0.01 to warm up the training until the training error is
    below 80% (about 400 iterations), and then go back to 0.1".

    The learning rate is multiplied by `factor` until a log period's mean training error (100 - train/top1) falls
    below `until_error`; from the next iteration on, by 1. The loop all-reduces the logged means, so every DDP rank
    reads the same error and switches at the same iteration; the switch iteration is saved in checkpoints.
    """

    def __init__(self, until_error: float, factor: float):
        self.until_error = until_error
        self.factor = factor
        self.ended_at: int | None = None  # the iterations trained at the warm-up rate; later ones take the full rate

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def lr_factor(self) -> float:
        """The multiplier of the learning rate now: `factor` during the warm-up, 1 otherwise."""
        return self.factor if self.active else 1.0

    def update(self, iteration: int, means: dict[str, float]) -> bool:
        """Ends the warm-up when the training error of the log period that ends at `iteration` is below
        `until_error`; returns whether it ended now."""
        if not self.active:
            return False
        if TRAIN_ACCURACY not in means:
            raise UserError(f"solver.warmup_until_error needs the training accuracy {TRAIN_ACCURACY!r}, which this "
                            f"task does not log; set solver.warmup_until_error=null")
        if 100 - means[TRAIN_ACCURACY] >= self.until_error:
            return False
        self.ended_at = iteration
        return True

    def state_dict(self) -> dict:
        return {"ended_at": self.ended_at}

    def load_state_dict(self, state: dict) -> None:
        self.ended_at = state["ended_at"]


def build_optimizer(model: nn.Module, solver: dict) -> torch.optim.Optimizer:
    """SGD over the trainable parameters, with detectron2's weight-decay groups: norm layers' weights and biases take
    `weight_decay_norm`, other biases `weight_decay_bias`, everything else `weight_decay`; None for either of the
    first two means `weight_decay` (detectron2's WEIGHT_DECAY_BIAS, torchvision's references decay everything)."""
    groups = {"weights": [], "biases": [], "norms": []}
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                groups["norms" if is_norm else "biases" if name == "bias" else "weights"].append(param)
    decays = {group: solver["weight_decay"] if solver[key] is None else solver[key]
              for group, key in (("weights", "weight_decay"), ("biases", "weight_decay_bias"),
                                 ("norms", "weight_decay_norm"))}
    return torch.optim.SGD([dict(params=params, weight_decay=decays[group]) for group, params in groups.items()],
                           lr=solver["lr"], momentum=solver["momentum"], nesterov=solver["nesterov"])


def lr_factor(iteration: int, solver: dict) -> float:
    """The multiplier of the base learning rate at `iteration`: warm-up times the decay schedule.

    Warm-up ramps linearly from `warmup_factor` to 1 ("linear", detectron2's) or stays at `warmup_factor`
    ("constant", for a fixed number of iterations; the paper's rule, which ends on the measured training error, is
    `ErrorWarmup`).
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


def build_scheduler(optimizer: torch.optim.Optimizer, solver: dict, warmup: ErrorWarmup | None = None
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration LambdaLR following `lr_factor` (which checks the schedule names first), times the factor of
    `warmup` when one is given."""
    lr_factor(0, solver)
    if warmup is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, solver))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda iteration: lr_factor(iteration, solver) * warmup.lr_factor())


def refresh_lr(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Sets the optimizer's learning rates to the schedule's value at its current iteration again (after the
    `ErrorWarmup` ended, so that the next step already takes the full rate)."""
    rates = [base * factor(scheduler.last_epoch) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, rate in zip(scheduler.optimizer.param_groups, rates):
        group["lr"] = rate
    scheduler._last_lr = rates  # what get_last_lr() reports
