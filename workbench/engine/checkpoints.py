"""Training checkpoints: written atomically, read back with weights_only=True, found again for --resume; one run at
a time in an output folder."""
import fcntl
import io
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from workbench.errors import MissingFileError, UserError

LAST_CHECKPOINT = "last_checkpoint"
LOCK_FILE = ".run.lock"
PERIODIC_CHECKPOINTS = "checkpoint_[0-9]*.pth"


def atomic_save(obj: object, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, flushed to disk, then renamed: a crash, a kill or a full disk
    never leaves a half-written file where a checkpoint was.

    Raises:
        UserError: the file could not be written (a full disk, say); the previous file at `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
    except (OSError, RuntimeError) as error:
        temporary.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {last_line(error)}; the previous checkpoint is intact (free some space "
                        f"or choose another --output-dir, then --resume)") from error
    os.replace(temporary, path)


def lock_output_dir(output_dir: str | Path) -> io.TextIOWrapper:
    """Takes `output_dir` for this run until the returned file is closed (or the process ends).

    Raises:
        UserError: another run holds the folder; the message gives its process id.
    """
    path = Path(output_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise UserError(f"another run (process {holder}) is writing into {output_dir}; wait for it to end, or give "
                        f"this run another --output-dir") from error
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def rng_state(device: torch.device) -> dict:
    """This process's random generators: torch's CPU one, the one of its own GPU (when `device` is one), numpy's and
    python's."""
    numpy_state = np.random.get_state()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        numpy=dict(keys=torch.from_numpy(numpy_state[1].astype(np.int64)), pos=int(numpy_state[2]),
                   has_gauss=int(numpy_state[3]), cached_gaussian=float(numpy_state[4])),
        python=random.getstate(),
    )


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restores what `rng_state` returned; a GPU state goes to `device` when it is a GPU (a run saved on the CPU
    leaves the GPU's generator as it is)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training_state(output_dir: str | Path, name: str, state: dict) -> Path:
    """Saves `state` as `output_dir/name` and records it as the checkpoint to resume from."""
    path = Path(output_dir) / name
    atomic_save(state, path)
    temporary = Path(output_dir) / f".{LAST_CHECKPOINT}.tmp"
    temporary.write_text(name)
    os.replace(temporary, Path(output_dir) / LAST_CHECKPOINT)
    return path


def remove_older_checkpoints(output_dir: str | Path, kept: int) -> None:
    """Deletes the periodic checkpoints (`checkpoint_<iteration>.pth`) of `output_dir` but the newest `kept`; the one
    `last_checkpoint` names always stays."""
    pointer = Path(output_dir) / LAST_CHECKPOINT
    newest = pointer.read_text().strip() if pointer.is_file() else None
    periodic = sorted(Path(output_dir).glob(PERIODIC_CHECKPOINTS), key=lambda path: int(path.stem.split("_")[1]))
    for path in periodic[:-kept]:
        if path.name != newest:
            path.unlink(missing_ok=True)


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint recorded by the latest `save_training_state` in `output_dir`, if any."""
    pointer = Path(output_dir) / LAST_CHECKPOINT
    if not pointer.is_file():
        return None
    path = Path(output_dir) / pointer.read_text().strip()
    if not path.is_file():
        raise MissingFileError(f"{pointer} names {path.name}, which does not exist")
    return path


def load_training_state(path: str | Path) -> dict:
    """Reads a training checkpoint without running any code from it.

    Raises:
        UserError: the file is missing, truncated or not a torch checkpoint, or it holds objects other than tensors
            and plain containers (it could run code when loaded; it is refused).
    """
    if not Path(path).is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(f"{path}: refused: it holds objects other than tensors and plain containers, which could run "
                        f"code when loaded ({refused_global(error)})") from error
    except (RuntimeError, EOFError) as error:
        raise UserError(f"{path}: not a readable torch checkpoint (truncated or of another format): "
                        f"{last_line(error)}") from error


def refused_global(error: pickle.UnpicklingError) -> str:
    """The line of torch's message that names the refused object ("Unsupported global: GLOBAL builtins.open")."""
    lines = [line.strip() for line in str(error).splitlines() if "Unsupported" in line or "GLOBAL" in line]
    return lines[0][:200] if lines else last_line(error)


def last_line(error: BaseException) -> str:
    """The last line of an error's message (torch puts the cause there), or its type when it has none."""
    lines = str(error).strip().splitlines()
    return lines[-1][:200] if lines else type(error).__name__
