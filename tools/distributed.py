"""torch.distributed set-up for torchrun: nccl on GPU, gloo on CPU; single-process runs need no set-up at all."""
import os

import torch
import torch.distributed as dist


def init_distributed() -> torch.device:
    """Joins the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK) and returns this process's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def select_device(name: str) -> torch.device:
    """Joins the process group (when under torchrun); `auto` is this rank's GPU when there is one, else the CPU."""
    device = init_distributed()
    return device if name == "auto" else torch.device(name)


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that logs, evaluates and saves."""
    return get_rank() == 0


def all_gather_object(obj: object) -> list:
    """Every rank's `obj`, in rank order."""
    if not is_distributed():
        return [obj]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Waits for every rank."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """The mean over ranks of each value (for logging losses)."""
    if not is_distributed():
        return values
    names = sorted(values)
    tensor = torch.tensor([float(values[n]) for n in names], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {n: v / get_world_size() for n, v in zip(names, tensor.tolist())}


def cleanup() -> None:
    """Leaves the process group."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
