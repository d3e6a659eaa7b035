"""The training loop shared by train_det.py and train_cls.py: iterations, AMP, accumulation, DDP, clipping, NaN
guard, progress bar, metrics, periodic evaluation and checkpoints, SIGTERM/Ctrl-C saving, exact resume."""
import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

import checkpoints
import distributed
from metrics import MetricWriter


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the message names the iteration and the loss terms."""


class StopSignal:
    """Records SIGTERM / SIGINT so the loop can save a checkpoint and exit cleanly at the end of the iteration."""

    def __init__(self):
        self.received: str | None = None
        self.previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def restore(self) -> None:
        """Puts the previous handlers back."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainState:
    """Everything a checkpoint restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    iteration: int = 0
    extra: dict = field(default_factory=dict)

    def state_dict(self, config: dict) -> dict:
        model = self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model
        return dict(model=model.state_dict(), optimizer=self.optimizer.state_dict(),
                    scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(), iteration=self.iteration,
                    rng=checkpoints.rng_state(), config=config, **self.extra)

    def load_state_dict(self, state: dict) -> None:
        model = self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]
        checkpoints.set_rng_state(state["rng"])


def autocast(device: torch.device, enabled: bool):
    """fp16 autocast on CUDA, bf16 on CPU, or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def check_finite(losses: dict[str, torch.Tensor], iteration: int) -> None:
    """Raises NonFiniteLossError naming the iteration and every non-finite loss term."""
    bad = {name: value.item() for name, value in losses.items() if not torch.isfinite(value).all()}
    if bad:
        terms = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise NonFiniteLossError(f"non-finite loss at iteration {iteration}: {terms}; lower solver.lr, raise "
                                 f"solver.warmup_iters or set solver.clip_grad_norm")


@dataclass
class LoopSettings:
    """The knobs of `train_loop`, taken from the config's `solver` and `train` sections."""

    max_iter: int
    accumulate: int = 1
    clip_grad_norm: float | None = None
    amp: bool = False
    log_period: int = 20
    checkpoint_period: int = 0
    eval_period: int = 0


def train_loop(
    state: TrainState, batches: Iterator, step: Callable[[nn.Module, object], dict[str, torch.Tensor]],
    settings: LoopSettings, device: torch.device, output_dir: str, config: dict,
    evaluate: Callable[[int], dict[str, float]] | None = None,
) -> str:
    """Trains from `state.iteration` to `settings.max_iter`.

    Args:
        state: model, optimizer, scheduler, scaler and the iteration to start from.
        batches: an endless iterator of batches, already positioned at `state.iteration`.
        step: computes the loss dict of one batch (moving it to the device is its job); see `run_iteration`.
        settings: iterations, accumulation, clipping, AMP and periods.
        device: where the model runs.
        output_dir: where checkpoints and metrics go.
        config: saved inside every checkpoint.
        evaluate: called every `eval_period` iterations and at the end; returns scores to log.

    Returns:
        "finished", or the name of the signal that stopped training after saving a checkpoint.
    """
    main = distributed.is_main_process()
    writer = MetricWriter(output_dir) if main else None
    stop = StopSignal()
    progress = tqdm(total=settings.max_iter, initial=state.iteration, desc="train", dynamic_ncols=True,
                    disable=not main)
    model = state.model
    model.train()
    outcome = "finished"
    period = PeriodMeans()
    try:
        while state.iteration < settings.max_iter:
            started = time.perf_counter()
            values = run_iteration(state, batches, step, settings, device)
            state.iteration += 1
            period.add(dict(values, time=time.perf_counter() - started))
            progress.update(1)
            progress.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{state.optimizer.param_groups[0]['lr']:.4f}")
            if main and (state.iteration % settings.log_period == 0 or state.iteration == settings.max_iter):
                writer.write(state.iteration, dict(period.pop(), lr=state.optimizer.param_groups[0]["lr"]))
            if settings.checkpoint_period and state.iteration % settings.checkpoint_period == 0:
                save(state, output_dir, config)
            if evaluate and settings.eval_period and state.iteration % settings.eval_period == 0 \
                    and state.iteration < settings.max_iter:
                scores = evaluate(state.iteration)
                model.train()
                if main and scores:
                    writer.write(state.iteration, scores)
            if stop.received:
                outcome = stop.received
                save(state, output_dir, config)
                break
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


class PeriodMeans:
    """Means of the values logged since the last `pop` (one log record per `log_period` iterations)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def pop(self) -> dict[str, float]:
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means


def run_iteration(
    state: TrainState, batches: Iterator, step: Callable, settings: LoopSettings, device: torch.device
) -> dict[str, float]:
    """One optimizer step over `settings.accumulate` batches; returns the mean of every term (over ranks too).

    The terms whose names start with "loss" are summed into the loss that is minimised; other terms (e.g. a training
    accuracy) are only averaged and logged.
    """
    model, optimizer, scaler = state.model, state.optimizer, state.scaler
    optimizer.zero_grad(set_to_none=True)
    totals: dict[str, float] = {}
    for micro in range(settings.accumulate):
        last = micro == settings.accumulate - 1
        sync = model.no_sync() if isinstance(model, nn.parallel.DistributedDataParallel) and not last \
            else contextlib.nullcontext()
        with sync:
            with autocast(device, settings.amp):
                losses = step(model, next(batches))
            losses = {name: value.float() for name, value in losses.items()}
            check_finite({name: value for name, value in losses.items() if name.startswith("loss")},
                         state.iteration + 1)
            total = sum(value for name, value in losses.items() if name.startswith("loss"))
            scaler.scale(total / settings.accumulate).backward()
        for name, value in dict(losses, loss=total).items():
            totals[name] = totals.get(name, 0.0) + value.item() / settings.accumulate
    if settings.clip_grad_norm:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, settings.clip_grad_norm)
        totals["grad_norm"] = norm.item() if math.isfinite(norm.item()) else float("nan")
    scaler.step(optimizer)
    scaler.update()
    state.scheduler.step()
    return distributed.all_reduce_mean(totals)


def save(state: TrainState, output_dir: str, config: dict, name: str | None = None) -> None:
    """Saves a checkpoint on the main process (`checkpoint_<iteration>.pth` unless `name` is given)."""
    if distributed.is_main_process():
        checkpoints.save_training_state(output_dir, name or f"checkpoint_{state.iteration:07d}.pth",
                                        state.state_dict(config))
    distributed.barrier()
