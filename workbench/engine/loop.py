"""The training loop shared by detection and classification: iterations, AMP, accumulation, DDP, clipping, NaN
guard, progress bar, metrics, periodic evaluation and checkpoints, SIGTERM/Ctrl-C saving, exact resume.

Every rank takes the same decisions at the same iteration: one all-reduced tensor per iteration carries the loss
terms, the number of ranks whose loss or gradients are not finite and the number of ranks asked to stop. That tensor's
three flags are the only values read to the host every iteration; the loss terms are read once per log period.
"""
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from backbones.conventions import stated_conventions
from workbench.engine import checkpoints, distributed
from workbench.engine.metrics import MetricWriter
from workbench.engine.solver import TRAIN_ACCURACY, ErrorWarmup, refresh_lr
from workbench.engine.stop_signals import StopSignal

logger = logging.getLogger(__name__)


NONFINITE_POLICIES = ("stop", "skip")


class NonFiniteError(FloatingPointError):
    """A loss or a gradient became NaN or infinite; the message names the iteration and the terms."""


@dataclass
class TrainState:
    """Everything a checkpoint restores, and the device whose random generator it saves."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    iteration: int = 0
    skipped_steps: int = 0
    extra: dict = field(default_factory=dict)
    error_warmup: ErrorWarmup | None = None

    def state_dict(self, config: dict) -> dict:
        """The model (outside DDP), optimizer, schedule, loss scale, iteration, the error-driven warm-up's state,
        config and the conventions of the model's weights (`backbones.conventions.stated_conventions`; no RNG
        states)."""
        model = self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model
        warmup = {"error_warmup": self.error_warmup.state_dict()} if self.error_warmup else {}
        return dict(model=model.state_dict(), optimizer=self.optimizer.state_dict(),
                    scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(), iteration=self.iteration,
                    skipped_steps=self.skipped_steps, config=config, conventions=stated_conventions(model), **warmup,
                    **self.extra)

    def load_state_dict(self, state: dict) -> None:
        """Restores a checkpoint of `save`; this rank's generators come from its own entry of `rng_per_rank`.

        AMP may be switched on or off across a resume: a loss scale saved without AMP is empty, and the scaler then
        starts from its initial scale.
        """
        model = self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        elif self.scaler.is_enabled():
            logger.info("the checkpoint was saved without AMP: the loss scale starts at %g", self.scaler.get_scale())
        self.iteration = state["iteration"]
        self.skipped_steps = state.get("skipped_steps", 0)
        if self.error_warmup and "error_warmup" in state:
            self.error_warmup.load_state_dict(state["error_warmup"])
        saved, rank, world = state.get("rng_per_rank", []), distributed.get_rank(), distributed.get_world_size()
        if len(saved) != world and rank == 0:
            logger.warning("resuming a run of %d process(es) with %d: each process now reads every %d-th image of "
                           "each epoch's permutation, so the images from here on differ from an uninterrupted run's "
                           "(the total batch stays data.batch_size); processes without saved random states keep "
                           "their seeded ones", len(saved), world, world)
        if rank < len(saved):
            checkpoints.set_rng_state(saved[rank], self.device)


def autocast(device: torch.device, enabled: bool):
    """fp16 autocast on CUDA, bf16 on CPU, or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


@dataclass
class LoopSettings:
    """The knobs of `train_loop`, taken from the config's `solver` and `train` sections."""

    max_iter: int
    accumulate: int = 1
    clip_grad_norm: float | None = None
    amp: bool = False
    on_nonfinite: str = "stop"
    log_period: int = 20
    checkpoint_period: int = 0
    checkpoints_kept: int = 0
    eval_period: int = 0


def train_loop(
    state: TrainState, loader: Iterable, step: Callable[[nn.Module, object], dict[str, torch.Tensor]],
    settings: LoopSettings, output_dir: str, config: dict,
    evaluate: Callable[[int], dict[str, float]] | None = None,
) -> str:
    """Trains from `state.iteration` to `settings.max_iter`.

    Args:
        state: model, optimizer, scheduler, scaler, device and the iteration to start from.
        loader: endless batches, already positioned at `state.iteration`; iterated once the stop handlers are in
            place, so that its workers start under them.
        step: computes the loss dict of one batch (moving it to the device is its job); see `run_iteration`.
        settings: iterations, accumulation, clipping, AMP and periods.
        output_dir: where checkpoints and metrics go.
        config: saved inside every checkpoint.
        evaluate: called every `eval_period` iterations and at the end; returns scores to log.

    Returns:
        "finished", or the name of the signal that stopped training after saving a checkpoint.

    Raises:
        NonFiniteError: on every rank at the same iteration, when a loss or a gradient is not finite on any rank
            and `settings.on_nonfinite` is "stop".
    """
    main = distributed.is_main_process()
    writer = MetricWriter(output_dir, append=state.iteration > 0) if main else None
    stop = StopSignal()
    progress = tqdm(total=settings.max_iter, initial=state.iteration, desc="train", dynamic_ncols=True,
                    disable=not main)
    model = state.model
    model.train()
    outcome = "finished"
    period = PeriodMeans()
    try:
        batches = iter(loader)
        while state.iteration < settings.max_iter:
            started = time.perf_counter()
            values, stopping = run_iteration(state, batches, step, settings, stop.received is not None)
            state.iteration += 1
            period.add(values, time.perf_counter() - started)
            progress.update(1)
            if state.iteration % settings.log_period == 0 or state.iteration == settings.max_iter or stopping:
                means = dict(period.pop(), lr=state.optimizer.param_groups[0]["lr"])
                warmup_ended = state.error_warmup is not None and state.error_warmup.update(state.iteration, means)
                if warmup_ended:
                    means["warmup_ended"] = 1.0
                if main:
                    writer.write(state.iteration, means)
                    progress.set_postfix(loss=f"{means['loss']:.3f}", lr=f"{means['lr']:.4f}")
                if warmup_ended:
                    end_warmup(state, means, progress if main else None)
            if stopping:
                outcome = stop.received or "a stop signal to another process"
                save(state, output_dir, config)
                break
            if settings.checkpoint_period and state.iteration % settings.checkpoint_period == 0:
                save(state, output_dir, config)
                if settings.checkpoints_kept and distributed.is_main_process():
                    checkpoints.remove_older_checkpoints(output_dir, settings.checkpoints_kept)
            if evaluate and settings.eval_period and state.iteration % settings.eval_period == 0 \
                    and state.iteration < settings.max_iter:
                scores = evaluate(state.iteration)
                model.train()
                if main and scores:
                    writer.write(state.iteration, scores)
    finally:
        progress.close()
        stop.restore()
    if outcome == "finished":
        save(state, output_dir, config, name="model_final.pth")
        if evaluate:
            scores = evaluate(state.iteration)
            if main and scores:
                writer.write(state.iteration, scores)
    if writer:
        writer.close()
    return outcome


def end_warmup(state: TrainState, means: dict[str, float], progress: tqdm | None) -> None:
    """Switches to the full learning rate from the next step on, and says so on the main process's `progress`."""
    refresh_lr(state.scheduler)
    if progress is not None:
        progress.write(f"iteration {state.iteration}: training error {100 - means[TRAIN_ACCURACY]:.1f}% < "
                       f"{state.error_warmup.until_error:g}%, the warm-up ends: lr {means['lr']:g} -> "
                       f"{state.optimizer.param_groups[0]['lr']:g}")


class PeriodMeans:
    """Means of the values logged since the last `pop` (one log record per `log_period` iterations); the tensors
    stay where they are until `pop` reads them all at once."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.time = 0.0
        self.count = 0

    def add(self, values: dict[str, torch.Tensor], seconds: float) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.time += seconds
        self.count += 1

    def pop(self) -> dict[str, float]:
        names = sorted(self.sums)
        means = torch.stack([self.sums[name] for name in names]).div(self.count).tolist()
        result = dict(zip(names, means), time=self.time / self.count)
        self.sums, self.time, self.count = {}, 0.0, 0
        return result


def run_iteration(
    state: TrainState, batches: Iterator, step: Callable, settings: LoopSettings, stop_requested: bool
) -> tuple[dict[str, torch.Tensor], bool]:
    """One optimizer step over `settings.accumulate` batches, agreed on by every rank.

    The terms whose names start with "loss" are summed into the loss that is minimised; other terms (e.g. a training
    accuracy) are only averaged and logged. After the backward passes, `agree` shares the terms and the flags. When a
    rank's loss, or the gradients, are not finite, every rank stops (NonFiniteError) or skips the step, as
    `settings.on_nonfinite` says. Under fp16 AMP the loss scaler skips steps whose gradients overflow itself.

    Returns:
        The mean over ranks of every term (and the gradient norm), as tensors on the device, and whether any rank
        was asked to stop.
    """
    model, optimizer, scaler, device = state.model, state.optimizer, state.scaler, state.device
    optimizer.zero_grad(set_to_none=True)
    totals: dict[str, torch.Tensor] = {}
    nonfinite = torch.zeros((), device=device)
    for micro in range(settings.accumulate):
        last = micro == settings.accumulate - 1
        sync = model.no_sync() if isinstance(model, nn.parallel.DistributedDataParallel) and not last \
            else contextlib.nullcontext()
        with sync:
            with autocast(device, settings.amp):
                losses = step(model, next(batches))
            losses = {name: value.float() for name, value in losses.items()}
            total = sum(value for name, value in losses.items() if name.startswith("loss"))
            nonfinite = nonfinite + (~torch.isfinite(total)).float()  # a non-finite term makes the sum non-finite
            scaler.scale(total / settings.accumulate).backward()
        for name, value in dict(losses, loss=total).items():
            totals[name] = totals.get(name, 0.0) + value.detach() / settings.accumulate
    norm = gradient_norm(optimizer, scaler, settings.clip_grad_norm, device)
    totals["grad_norm"] = norm
    bad_gradients = (~norm.isfinite()).float() if not scaler.is_enabled() else torch.zeros((), device=device)
    means, flags = agree(totals, torch.stack([nonfinite.clamp(max=1), bad_gradients]), stop_requested)
    ranks_nonfinite, ranks_bad_gradients, ranks_stopping = flags.tolist()
    if ranks_nonfinite or ranks_bad_gradients:
        skip_step(state, settings, nonfinite_message(means, state.iteration + 1, int(ranks_nonfinite)))
    else:
        scaler.step(optimizer)
        scaler.update()
    state.scheduler.step()
    return means, ranks_stopping > 0


def gradient_norm(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip: float | None,
                  device: torch.device) -> torch.Tensor:
    """The total norm of the (unscaled) gradients, after clipping them to `clip` when it is set."""
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return torch.zeros((), device=device)
    if clip:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in params]))


def skip_step(state: TrainState, settings: LoopSettings, problem: str) -> None:
    """Raises NonFiniteError naming `problem`, or skips the step with a counted warning, as the settings say.

    A skipped step still ends the loss scaler's iteration (`unscale_` was called), keeping its scale: under fp16 AMP
    only a non-finite loss is skipped here, which was not finite before scaling, so the scale neither backs off (as
    at an overflow, which `scaler.step` skips itself) nor counts the step towards growing; every rank keeps the
    same scale.
    """
    if settings.on_nonfinite == "stop":
        raise NonFiniteError(f"{problem}; lower solver.lr, raise solver.warmup_iters, set solver.clip_grad_norm, or "
                             f"set solver.on_nonfinite=skip to skip such steps")
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.update(state.scaler.get_scale())
    state.skipped_steps += 1
    if distributed.is_main_process():
        logger.warning("%s; step skipped (%d skipped so far; solver.on_nonfinite=stop stops instead)", problem,
                       state.skipped_steps)


def agree(terms: dict[str, torch.Tensor], nonfinite: torch.Tensor, stop_requested: bool
          ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The iteration's one collective: all-reduces the terms and the flags, as one tensor on the terms' device.

    Args:
        nonfinite: this rank's flags [loss not finite, gradients not finite], 0 or 1 each.

    Returns:
        The mean over ranks of each term, and [ranks whose loss is not finite, ranks whose gradients are not finite,
        ranks asked to stop].
    """
    names = sorted(terms)
    stop = torch.full((1,), float(stop_requested), device=nonfinite.device)
    status = distributed.all_reduce_sum(torch.cat([torch.stack([terms[name] for name in names]), nonfinite, stop]))
    return dict(zip(names, (status[:-3] / distributed.get_world_size()).unbind())), status[-3:]


def nonfinite_message(means: dict[str, torch.Tensor], iteration: int, ranks: int) -> str:
    """Names the iteration, the non-finite loss terms (means over ranks) and how many ranks saw them, or the
    gradient norm when the losses are finite."""
    where = f" on {ranks} of {distributed.get_world_size()} processes" if distributed.is_distributed() else ""
    if not ranks:
        return f"non-finite gradients at iteration {iteration} (grad_norm={means['grad_norm'].item()})"
    losses = {name: value.item() for name, value in means.items() if name.startswith("loss")}
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if len(bad) > 1:
        bad.pop("loss", None)  # the sum, when the terms are named
    terms = ", ".join(f"{name}={value}" for name, value in bad.items())
    return f"non-finite loss at iteration {iteration}{where}: {terms}"


def save(state: TrainState, output_dir: str, config: dict, name: str | None = None) -> None:
    """Saves a checkpoint (`checkpoint_<iteration>.pth` unless `name` is given). Every rank calls it: each one's
    random generator states are gathered, and the main process writes the file."""
    rng_per_rank = distributed.gather_to_main(checkpoints.rng_state(state.device))
    if distributed.is_main_process():
        checkpoints.save_training_state(output_dir, name or f"checkpoint_{state.iteration:07d}.pth",
                                        dict(state.state_dict(config), rng_per_rank=rng_per_rank))
    distributed.barrier()
