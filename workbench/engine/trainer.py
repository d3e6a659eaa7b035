"""The training skeleton that detection and classification share: the config, the model wrapped for SyncBN and DDP,
optimizer, schedule and resume, the seeded batches, the loop, the curves and the final report. The command line is
`workbench.cli.training`.

A `Task` says what differs: how to build the model and the data, the training step, the evaluation and the report.
"""
import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from backbones.old_paths import moved_names
from workbench.config.checks import check_values
from workbench.config.loader import format_config, load_config
from workbench.data.batching import SeededSamples, training_batches
from workbench.engine import checkpoints, distributed, recipe
from workbench.engine.loop import LoopSettings, NonFiniteError, TrainState, train_loop
from workbench.engine.metrics import plot_curves
from workbench.engine.solver import ErrorWarmup, build_optimizer, build_scheduler
from workbench.engine.stop_signals import ignore_stop_signals
from workbench.errors import MissingFileError, TrainingStopped, UserError


class Task:
    """One kind of training (detection, classification) on `config`: what `train` asks of it."""

    curves_file = "training_curves.png"
    collate_fn = None  # the DataLoader's default

    def __init__(self, config: dict):
        self.config = config

    def build(self, device: torch.device) -> tuple[nn.Module, Dataset, Dataset]:
        """The model (on `device`), the training set and the validation set."""
        raise NotImplementedError

    def group_ids(self, train_set: Dataset) -> list[int] | None:
        """A group per training sample (batches never mix groups), or None."""
        return None

    def step(self, device: torch.device):
        """The function that computes the loss dict of one batch (see `engine.loop.run_iteration`)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, val_set: Dataset, device: torch.device, output_dir: Path,
                 final: bool) -> dict:
        """Evaluation results on the main process (empty elsewhere); `final` after the last iteration."""
        raise NotImplementedError

    def scores(self, results: dict) -> dict[str, float]:
        """The scalars of `results` to log."""
        raise NotImplementedError

    def score_keys(self) -> tuple[str, ...]:
        """The logged keys drawn beside the loss."""
        return ()

    def summary(self, model: nn.Module, train_set: Dataset, val_set: Dataset) -> str:
        """What to print before training starts (the data and the model), beside the effective recipe."""
        return ""

    def report(self, results: dict) -> str:
        """What to print after an evaluation."""
        raise NotImplementedError

    def result(self, results: dict) -> dict:
        """What `train` returns from the final results."""
        return results


def resolve_config(defaults: dict, config_file: str | None = None, overrides: list[str] = (),
                   output_dir: str | None = None) -> dict:
    """Defaults, then the file, then overrides, then `output_dir` (a path, taken as it is), then the rescaling to
    `solver.reference_batch_size` (`recipe.scaled_to_batch`); impossible values are a UserError before any work
    starts."""
    config = load_config(defaults, config_file, overrides)
    if output_dir:
        config["train"]["output_dir"] = output_dir
    return check_values(recipe.scaled_to_batch(check_values(config)))


def run(config: dict, task: type[Task], resume: bool = False) -> dict:
    """Trains `task` on `config` (see `train`), then leaves the process group.

    Raises:
        TrainingStopped: a non-finite loss, or a collective broken by another process's failure; a broken group is
            left as it is, since leaving it cleanly could wait for ever.
    """
    group_broken = False
    try:
        return train(task(config), resume)
    except NonFiniteError as error:
        raise TrainingStopped(str(error)) from error
    except RuntimeError as error:
        if not distributed.is_collective_error(error):
            raise
        group_broken = True
        raise TrainingStopped(f"a collective operation failed, most likely because another process of the job "
                              f"failed or was killed (see its output): {str(error).splitlines()[0]}") from error
    finally:
        if not group_broken:
            distributed.cleanup()


def train(task: Task, resume: bool = False) -> dict:
    """Trains and evaluates `task` as its config says; returns `task.result` of the final evaluation (on the main
    process; empty after a stop signal).

    Raises:
        UserError: `data.batch_size` does not divide among the processes (and micro-batches), before any work.
    """
    config = task.config
    device = distributed.select_device(config["train"]["device"])
    micro_batch = recipe.micro_batch_size(config["data"]["batch_size"], distributed.get_world_size(),
                                          config["solver"]["accumulate"])
    torch.manual_seed(config["train"]["seed"] + distributed.get_rank())
    output_dir = Path(config["train"]["output_dir"])
    lock = checkpoints.lock_output_dir(output_dir) if distributed.is_main_process() else None
    try:
        return _train(task, resume, device, output_dir, micro_batch)
    finally:
        if lock:
            lock.close()


def _train(task: Task, resume: bool, device: torch.device, output_dir: Path, micro_batch: int) -> dict:
    """`train`, once the device, the seeds, the output folder and each forward pass's `micro_batch` are settled."""
    config = task.config
    model, train_set, val_set = task.build(device)
    if config["train"]["grad_checkpointing"]:
        enable_grad_checkpointing(model)
    state = prepare_state(model, config, device, output_dir, resume)
    data, solver = config["data"], config["solver"]
    if distributed.is_main_process():
        lines = (task.summary(unwrapped(state.model), train_set, val_set),
                 recipe.recipe_line(config, distributed.get_world_size(), len(train_set)))
        print("\n".join(line for line in lines if line), flush=True)
    batch_indices = training_batches(len(train_set), micro_batch, config["train"]["seed"],
                                     group_ids=task.group_ids(train_set), rank=distributed.get_rank(),
                                     world_size=distributed.get_world_size(),
                                     start_batch=state.iteration * solver["accumulate"])
    loader = DataLoader(SeededSamples(train_set), batch_sampler=batch_indices, num_workers=data["workers"],
                        collate_fn=task.collate_fn, generator=torch.Generator(), pin_memory=device.type == "cuda",
                        worker_init_fn=ignore_stop_signals)
    final: dict = {}

    def evaluate(iteration: int) -> dict[str, float]:
        final.clear()
        final.update(task.evaluate(unwrapped(state.model), val_set, device, output_dir,
                                   final=iteration == solver["max_iter"]))
        if final and iteration != solver["max_iter"]:  # the final report follows the loop
            tqdm.write(f"evaluation at iteration {iteration}:\n{task.report(final)}")
        return task.scores(final) if final else {}

    outcome = train_loop(state, loader, task.step(device), loop_settings(config), str(output_dir), config, evaluate)
    if distributed.is_main_process():
        if (output_dir / "metrics.jsonl").is_file():
            plot_curves(output_dir / "metrics.jsonl", output_dir / task.curves_file, score_keys=task.score_keys())
        if outcome != "finished":
            print(stop_message(outcome, state.iteration, output_dir))
        elif final:
            print(task.report(final))
    return task.result(final)


def prepare_state(model: nn.Module, config: dict, device: torch.device, output_dir: Path, resume: bool
                  ) -> TrainState:
    """Wraps `model` (SyncBN when asked and on GPUs, DDP when distributed), builds optimizer, schedule and scaler,
    restores the last checkpoint of `output_dir` when resuming, and saves the config there."""
    solver = config["solver"]
    if solver["sync_bn"] and distributed.is_distributed():
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif distributed.is_main_process():
            logging.getLogger(__name__).warning("solver.sync_bn ignored: torch's SyncBatchNorm needs CUDA; each "
                                                "process normalises with its own batch statistics")
    if distributed.is_distributed():
        buffers_change = has_batchnorm_statistics(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        model.broadcast_buffers = buffers_change  # an attribute in older torch, a property in newer
    optimizer = build_optimizer(model, solver)
    until_error = solver.get("warmup_until_error")  # a key of classification configs only
    warmup = ErrorWarmup(until_error, solver["warmup_factor"]) if until_error is not None else None
    state = TrainState(model, optimizer, build_scheduler(optimizer, solver, warmup),
                       torch.amp.GradScaler(device.type, enabled=solver["amp"] and device.type == "cuda"), device,
                       error_warmup=warmup)
    if resume:
        path = checkpoints.last_checkpoint(output_dir)
        if path is None:
            raise MissingFileError(f"--resume: no checkpoint in {output_dir}")
        state.load_state_dict(checkpoints.load_training_state(path))
        logging.getLogger(__name__).info("resumed from %s at iteration %d", path, state.iteration)
    if distributed.is_main_process():
        (output_dir / "config.yaml").write_text(format_config(config))
    return state


def enable_grad_checkpointing(model: nn.Module) -> None:
    """Turns on gradient checkpointing in every part of `model` that offers it (timm's `set_grad_checkpointing`: the
    backbone of a classifier or a detector).

    Raises:
        UserError: no part of `model` offers it.
    """
    parts = [module for module in model.modules() if hasattr(module, "set_grad_checkpointing")]
    if not parts:
        raise UserError(f"train.grad_checkpointing=true, but no part of the {type(model).__name__} offers "
                        f"set_grad_checkpointing; set it to false")
    for part in parts:
        part.set_grad_checkpointing(True)


def has_batchnorm_statistics(model: nn.Module) -> bool:
    """True when a BatchNorm of `model` updates running statistics that DDP must broadcast from rank 0 (SyncBN keeps
    them equal itself; frozen BN has none that change)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
               and m.track_running_stats for m in model.modules())


def loop_settings(config: dict) -> LoopSettings:
    """The engine's settings from the config's solver and train sections."""
    solver, train = config["solver"], config["train"]
    return LoopSettings(max_iter=solver["max_iter"], accumulate=solver["accumulate"],
                        clip_grad_norm=solver["clip_grad_norm"], amp=solver["amp"],
                        on_nonfinite=solver["on_nonfinite"], log_period=train["log_period"],
                        checkpoint_period=train["checkpoint_period"], checkpoints_kept=train["checkpoints_kept"],
                        eval_period=train["eval_period"])


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside DDP."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def stop_message(outcome: str, iteration: int, output_dir: Path) -> str:
    """What to tell the user after a signal stopped training."""
    return (f"stopped by {outcome} at iteration {iteration}; checkpoint saved in {output_dir}; continue with "
            f"--resume")


# The command line's parser moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"args_parser": ("workbench.cli.training", "args_parser")})
