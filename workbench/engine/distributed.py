"""torch.distributed for torchrun: each process's device and backend, and the few collectives the tools use.

The backend follows the configured device: nccl for CUDA, gloo for the CPU. Tensors handed to the default group are
on that device (nccl serves CUDA tensors only). Objects (evaluation results, RNG states) and the waits around rank
0's own work (COCO scoring, writing a checkpoint) go through a second, gloo group, as in detectron2: it takes CPU
memory as it is, and its timeout allows a COCO-sized evaluation, while the default group keeps its short timeout to
catch hangs in training. A process started by torchrun joins the groups even when it is the only one, so a
one-GPU run takes the nccl path too.
"""
import datetime
import os
import re

import torch
import torch.distributed as dist

from workbench.errors import UserError

CPU_GROUP_TIMEOUT = datetime.timedelta(hours=1)  # pycocotools takes minutes on COCO val, much longer on LVIS
_cpu_group: dist.ProcessGroup | None = None


def launched_by_torchrun() -> bool:
    """True in a process that torchrun started (it sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def resolve_device(name: str, *, local_rank: int = 0, local_world_size: int = 1, cuda_devices: int = 0,
                   launched: bool = False) -> torch.device:
    """The device of this process for `train.device` = `name`.

    Args:
        name: "auto" (this process's GPU when there is one, else the CPU), "cpu", "cuda" (under torchrun, GPU
            LOCAL_RANK) or "cuda:N".
        local_rank: this process's rank on its node.
        local_world_size: the number of processes on this node.
        cuda_devices: the number of visible GPUs.
        launched: whether torchrun started this process.

    Raises:
        ValueError: a name that is no device, a GPU that is not there, or one GPU for several processes.
    """
    match = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", name)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise UserError(f"train.device={name!r} is not a device; use auto, cpu, cuda or cuda:N")
    kind, index = match[1], match[2]
    if kind == "auto":
        kind = "cuda" if cuda_devices else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not cuda_devices:
        raise UserError(f"train.device={name} but no GPU is visible (torch.cuda.is_available() is False); use "
                         f"train.device=cpu or auto")
    if index is None:
        index = local_rank if launched else 0
        if index >= cuda_devices:
            raise UserError(f"LOCAL_RANK={local_rank} but only {cuda_devices} GPU(s) are visible on this node; "
                             f"start at most {cuda_devices} processes per node (torchrun --nproc_per_node)")
        return torch.device("cuda", index)
    index = int(index)
    if index >= cuda_devices:
        raise UserError(f"train.device={name} but only {cuda_devices} GPU(s) are visible (cuda:0 to "
                         f"cuda:{cuda_devices - 1})")
    if launched and local_world_size > 1:
        raise UserError(f"train.device={name} would put all {local_world_size} processes of this node on one GPU; "
                         f"use train.device=cuda (process LOCAL_RANK takes cuda:LOCAL_RANK), and CUDA_VISIBLE_DEVICES "
                         f"to choose the GPUs")
    return torch.device("cuda", index)


def select_device(name: str) -> torch.device:
    """This process's device for `train.device` = `name`; under torchrun, joins the process group of its backend."""
    launched = launched_by_torchrun()
    device = resolve_device(name, local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                            local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
                            cuda_devices=torch.cuda.device_count(), launched=launched)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if launched and not dist.is_initialized():
        init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def init_process_group(backend: str, **kwargs) -> None:
    """Joins the default group with `backend` (keyword arguments as torch's) and creates the gloo group beside it."""
    global _cpu_group
    dist.init_process_group(backend=backend, **kwargs)
    _cpu_group = dist.new_group(backend="gloo", timeout=CPU_GROUP_TIMEOUT)


def is_distributed() -> bool:
    """True inside a process group (under torchrun, even of one process)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that logs, evaluates and saves."""
    return get_rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sums `tensor` over ranks in place (it must be on this process's device) and returns it."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def gather_to_main(obj: object) -> list | None:
    """Every rank's `obj` in rank order on the main process, None on the others (through the gloo group)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(obj, gathered, dst=0, group=_cpu_group)
    return gathered


def barrier() -> None:
    """Waits for every rank, as long as the main process may take to score an evaluation (the gloo group)."""
    if is_distributed():
        dist.barrier(group=_cpu_group)


def is_collective_error(error: BaseException) -> bool:
    """True for the error of a collective whose peer has gone (gloo's "Connection reset by peer", NCCL's errors)."""
    message = str(error)
    return is_distributed() and (isinstance(error, dist.DistError) or "gloo" in message or "NCCL" in message)


def cleanup() -> None:
    """Leaves the process groups."""
    global _cpu_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _cpu_group = None
