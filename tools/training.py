"""What train_det.py and train_cls.py share around the engine: the command line, the config, wrapping the model for
SyncBN and DDP, the optimizer and schedule, resuming, and the message of an interrupted run."""
import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import checkpoints
import distributed
from config import format_config, load_config
from engine import LoopSettings, NonFiniteLossError, TrainState
from solver import build_optimizer, build_scheduler


def args_parser(description: str, configs: str) -> argparse.ArgumentParser:
    """--config, --output-dir, --resume, --print-config and key=value overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help=f"YAML config (see {configs})")
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output dir")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. solver.lr=0.01")
    return parser


def resolve_config(defaults: dict, args: argparse.Namespace) -> dict:
    """Defaults, then the file, then overrides, then --output-dir."""
    overrides = list(args.overrides) + ([f"train.output_dir={args.output_dir}"] if args.output_dir else [])
    return load_config(defaults, args.config, overrides)


def run(args: argparse.Namespace, defaults: dict, train: Callable[[dict, bool], dict]) -> dict:
    """Prints the config (--print-config) or trains. A non-finite loss, or a collective broken by another process's
    failure, exits with a message; a broken group is left as it is, since leaving it cleanly could wait for ever."""
    config = resolve_config(defaults, args)
    if args.print_config:
        print(format_config(config))
        return {}
    group_broken = False
    try:
        return train(config, args.resume)
    except NonFiniteLossError as error:
        sys.exit(f"training stopped: {error}")
    except RuntimeError as error:
        if not distributed.is_collective_error(error):
            raise
        group_broken = True
        sys.exit(f"training stopped: a collective operation failed, most likely because another process of the job "
                 f"failed or was killed (see its output): {str(error).splitlines()[0]}")
    finally:
        if not group_broken:
            distributed.cleanup()


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
    state = TrainState(model, optimizer, build_scheduler(optimizer, solver),
                       torch.amp.GradScaler(device.type, enabled=solver["amp"] and device.type == "cuda"), device)
    if resume:
        path = checkpoints.last_checkpoint(output_dir)
        if path is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {output_dir}")
        state.load_state_dict(checkpoints.load_training_state(path))
        logging.getLogger(__name__).info("resumed from %s at iteration %d", path, state.iteration)
    if distributed.is_main_process():
        (output_dir / "config.yaml").write_text(format_config(config))
    return state


def has_batchnorm_statistics(model: nn.Module) -> bool:
    """True when a BatchNorm of `model` updates running statistics that DDP must broadcast from rank 0 (SyncBN keeps
    them equal itself; frozen BN has none that change)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
               and m.track_running_stats for m in model.modules())


def loop_settings(config: dict) -> LoopSettings:
    """The engine's settings from the config's solver and train sections."""
    solver, train = config["solver"], config["train"]
    return LoopSettings(max_iter=solver["max_iter"], accumulate=solver["accumulate"],
                        clip_grad_norm=solver["clip_grad_norm"], amp=solver["amp"], log_period=train["log_period"],
                        checkpoint_period=train["checkpoint_period"], eval_period=train["eval_period"])


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside DDP."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def stop_message(outcome: str, iteration: int, output_dir: Path) -> str:
    """What to tell the user after a signal stopped training."""
    return (f"stopped by {outcome} at iteration {iteration}; checkpoint saved in {output_dir}; continue with "
            f"--resume")
