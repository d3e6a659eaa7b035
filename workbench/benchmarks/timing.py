"""What every benchmark case shares: the machine line it starts with, timing of ours and the peers alternately after
warm-up (median of many), the largest difference between their outputs, and the JSON and markdown report.

Example:
    print(machine_line())
    times, outputs = alternate({"ours": lambda: ours(x), "torchvision": lambda: peer(x)}, repeats=20, warmup=2)
    seconds = medians(times)
    rows = [dict(case="resnet50", ours_ms=1000 * seconds["ours"], ratio=seconds["torchvision"] / seconds["ours"],
                 max_abs_diff=max_abs_difference(outputs["ours"], outputs["torchvision"]))]
    print(table(rows))
    write_report(rows, "output/benchmarks", "backbone", lines=[machine_line()])
"""
import ctypes
import ctypes.util
import functools
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from backbones import clear_weight_caches
from workbench.benchmarks.annotation_memory import resident_mib


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    """The first CUDA device's name and count, or "no GPU"."""
    if not torch.cuda.is_available():
        return "no GPU"
    count = torch.cuda.device_count()
    return torch.cuda.get_device_name(0) + (f" (x{count})" if count > 1 else "")


def machine_line() -> str:
    """A benchmark's first line: CPU model and cores, torch's CPU capability and threads, the GPU, torch's version."""
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} torch threads; {gpu_name()}; "
            f"torch {torch.__version__}")


def alternate(runs: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1, desc: str | None = None,
              synchronize: Callable[[], None] | None = None) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Times each of `runs` (name: function without arguments) once per round, `repeats` rounds after `warmup`
    untimed ones.

    The order within a round turns by one every round, so that no run always follows the same other run.
    `synchronize` (e.g. torch.cuda.synchronize) is called before starting and after stopping each clock.

    Returns:
        The seconds of every timed call of each run, and each run's last output.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} must be >= 1 and warmup={warmup} >= 0")
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, object] = {}
    sync = synchronize or (lambda: None)
    for round_index in tqdm(range(warmup + repeats), desc=desc, leave=False, disable=desc is None):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            outputs[name] = runs[name]()
            sync()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times, outputs


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"))  # find_library runs ldconfig: once


def _return_freed_memory() -> None:
    """Makes freed memory leave the resident set: large blocks are mapped and unmapped one by one (glibc's threshold
    fixed at 128 KiB, so it does not grow after frees), and the heap's free top is trimmed."""
    libc = _libc()
    if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        libc.malloc_trim(0)


def peak_memory_mib(run: Callable[[], object], device: torch.device | str = "cpu") -> tuple[object, float | None]:
    """Calls `run` once; returns its output and the most memory it held above what was in use before it.

    On CUDA: the peak of allocated CUDA memory above the allocated before. On the CPU (Linux): the peak resident set
    size (VmHWM, reset before the call) above the resident set before it, once freed memory has been returned to
    the system, so that what an earlier run freed does not hide this one's needs. Caches that `run` builds and keeps
    (folded or packed weights) count, as they are held at the peak. None where neither can be measured.
    """
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        output = run()
        torch.cuda.synchronize()
        return output, (torch.cuda.max_memory_allocated() - before) / 2 ** 20
    if not (PROC_STATUS.is_file() and PROC_CLEAR_REFS.is_file()):
        return run(), None
    _return_freed_memory()
    before = resident_mib()
    try:
        PROC_CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        return run(), None
    output = run()
    return output, resident_mib("VmHWM") - before


def peak_memory_after_warmup(runs: Mapping[str, Callable[[], object]], models: Mapping[str, torch.nn.Module],
                             device: torch.device | str = "cpu") -> tuple[dict, dict]:
    """Each run's first output, and the peak memory (`peak_memory_mib`) of a call that builds again what its model
    keeps between calls.

    Every run is called once first, so that the process's one-time set-up (thread pools, oneDNN's and autograd's
    state), which whichever run goes first would pay, counts for none. Then, run by run, its model's gradients and
    folded and packed weights are dropped (`backbones.clear_weight_caches`) and one call is measured: what it
    rebuilds and keeps counts.

    Args:
        models: the module behind each run, by the run's label; runs without one are measured as they are.
    """
    firsts = {label: run() for label, run in runs.items()}
    peaks = {}
    for label, run in runs.items():
        if label in models:
            models[label].zero_grad(set_to_none=True)
            clear_weight_caches(models[label])
        peaks[label] = peak_memory_mib(run, device)[1]
    return firsts, peaks


def medians(times: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The median of each run's seconds."""
    return {name: statistics.median(samples) for name, samples in times.items()}


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    raise TypeError(f"cannot compare outputs of type {type(value).__name__}")


def max_abs_difference(a, b) -> float:
    """The largest absolute difference between two outputs: tensors, or lists, tuples or dicts of them (compared in
    order); inf where their structure or shapes differ."""
    tensors_a, tensors_b = _tensors(a), _tensors(b)
    if len(tensors_a) != len(tensors_b) or any(x.shape != y.shape for x, y in zip(tensors_a, tensors_b)):
        return math.inf
    return max((float((x.detach().double() - y.detach().double()).abs().max()) for x, y in
                zip(tensors_a, tensors_b) if x.numel()), default=0.0)


def max_relative_difference(a, b) -> float:
    """`max_abs_difference` of each tensor over the largest magnitude of `b`'s, the largest of these."""
    tensors_a, tensors_b = _tensors(a), _tensors(b)
    if len(tensors_a) != len(tensors_b):
        return math.inf
    return max((max_abs_difference(x, y) / max(float(y.detach().abs().max()), 1e-30)
                for x, y in zip(tensors_a, tensors_b) if y.numel()), default=0.0)


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        magnitude = abs(value)
        if magnitude and (magnitude < 1e-2 or magnitude >= 1e6):
            return f"{value:.1e}"
        return f"{value:.2f}" if magnitude < 100 else f"{value:.0f}"
    return str(value)


def table(rows: Sequence[Mapping], columns: Mapping[str, str] | None = None, markdown: bool = False) -> str:
    """The rows as an aligned plain table, or a markdown one.

    Args:
        rows: dicts; lists in them (e.g. every sample) are left out of the table.
        columns: header per key, in order; by default every key of the first row whose value is no list.
    """
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = {key: key for key, value in rows[0].items() if not isinstance(value, (list, tuple, dict))}
    header = list(columns.values())
    cells = [[_cell(row.get(key, "")) for key in columns] for row in rows]
    if markdown:
        return "\n".join([f"| {' | '.join(header)} |", "|---" * len(header) + "|"]
                         + [f"| {' | '.join(row)} |" for row in cells])
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    left = [isinstance(rows[0].get(key), str) for key in columns]
    return "\n".join("  ".join(cell.ljust(width) if is_left else cell.rjust(width)
                               for cell, width, is_left in zip(row, widths, left)).rstrip()
                     for row in [header, *cells])


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_report(rows: Sequence[Mapping], output_dir: str | os.PathLike, name: str, *, lines: Sequence[str] = (),
                 columns: Mapping[str, str] | None = None, options: Mapping | None = None) -> tuple[Path, Path]:
    """Writes `name`.json (the lines, options and rows with every sample) and `name`.md (the lines and the table).

    Args:
        rows: the case's rows.
        output_dir: created if missing.
        name: the case's name, the files' stem.
        lines: what the case printed above its table, the machine line first (added when missing).
        columns: the table's columns, as in `table`.
        options: the command line's options, kept in the JSON.

    Returns:
        The paths of the JSON and markdown files.
    """
    lines = list(lines)
    if not lines or not lines[0].startswith("machine:"):
        lines.insert(0, machine_line())
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = output_dir / f"{name}.json", output_dir / f"{name}.md"
    document = {"machine": lines[0], "lines": lines[1:], "options": dict(options or {}), "rows": list(rows)}
    json_path.write_text(json.dumps(_jsonable(document), indent=1) + "\n")
    markdown_path.write_text("\n\n".join(lines + [table(rows, columns, markdown=True)]) + "\n")
    return json_path, markdown_path
