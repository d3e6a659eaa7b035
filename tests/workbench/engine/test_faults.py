"""Training under faults, through the command line and torchrun: a stop signal to the process group or to one rank
or to every process of a job, a NaN loss on one rank, a killed rank; and --resume after a stop, exact on as many
processes."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS
from workbench.engine import trainer
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.detection import DetectionTask

TOOLS = {  # task, schema, script, config
    "det": (DetectionTask, DETECTION_DEFAULTS, "tools/train_det.py", "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml"),
    "cls": (ClassificationTask, CLASSIFICATION_DEFAULTS, "tools/train_cls.py",
            "configs/classification/resnet18_shapes_cls.yaml"),
}
ENV = dict(os.environ, PYTHONPATH=".")  # torchrun gives each worker 1 thread
pytestmark = pytest.mark.slow  # every test here runs the tools as subprocesses
LONG_RUN = "solver.max_iter=200"  # long enough to be stopped in the middle
EXIT_STATUS = "tests/workbench/engine/exit_status.py"  # runs a tool and prints its exit status


@pytest.fixture(params=["det", "cls"])
def tool(request, quick_overrides, quick_cls_overrides):
    """(tool name, its CPU-quick overrides with the total batch doubled: 2 processes take the quick batch each)."""
    if request.param == "det":
        return "det", quick_overrides + ["eval.draw_images=0", "data.batch_size=4"]
    return "cls", quick_cls_overrides + ["data.batch_size=16"]


def command(tool: str, output_dir: Path, overrides: list[str], processes: int = 0, port: int = 0,
            script: list[str] = ()) -> list:
    """The command line of a training run: one process, or `processes` under torchrun; `script` replaces the tool."""
    _, _, path, config = TOOLS[tool]
    launcher = [sys.executable]
    if processes:
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
                     str(port)]
    return launcher + (list(script) or [path]) + ["--config", config, "--output-dir", str(output_dir)] + overrides


def start(arguments: list, log: Path) -> subprocess.Popen:
    """Starts a job in its own session (so a signal to its process group reaches nothing else)."""
    return subprocess.Popen(arguments, env=ENV, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(condition, timeout: float, job: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if job is not None and job.poll() is not None:
            raise AssertionError(f"the job ended (exit {job.returncode}) before the condition held")
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def logged_iterations(output_dir: Path) -> int:
    metrics = output_dir / "metrics.jsonl"
    return sum('"loss"' in line for line in metrics.read_text().splitlines()) if metrics.is_file() else 0


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        tree.setdefault(parent, []).append(int(stat.parent.name))
    return tree


def job_processes(pid: int) -> list[int]:
    """`pid` and all its descendants: torchrun, its workers and their data-loading workers."""
    tree, found = children(), [pid]
    for process in found:
        found += tree.get(process, [])
    return found


def rank_processes(torchrun_pid: int) -> dict[int, int]:
    """{rank: pid} of torchrun's workers."""
    ranks = {}
    for pid in children().get(torchrun_pid, []):
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ranks.update({int(v[5:]): pid for v in environment if v.startswith(b"RANK=")})
    return ranks


def saved_iteration(output_dir: Path) -> int:
    return torch.load(output_dir / (output_dir / "last_checkpoint").read_text(), weights_only=True)["iteration"]


def train(tool: str, output_dir: Path, overrides: list[str], resume: bool = False):
    """Trains in this process; a resumed run may have another process count than the one it continues."""
    task, defaults, _, config = TOOLS[tool]
    return trainer.run(trainer.resolve_config(defaults, config, overrides, str(output_dir)), task, resume)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_shapes):
    """A whole 8-iteration detection run with a data-loading worker, and its overrides."""
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    overrides = [f"data.root={tiny_shapes}", "data.batch_size=2", "data.workers=1", "model.options.min_size=64",
                 "model.options.max_size=64", "solver.max_iter=8", "solver.warmup_iters=1", "train.log_period=1",
                 "train.checkpoint_period=0", "eval.batch_size=4", "eval.draw_images=0"]
    train("det", output_dir, overrides)
    return output_dir, overrides


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_process_group_saves_and_resume_is_exact(tmp_path, uninterrupted, signum):
    whole_dir, overrides = uninterrupted
    job = start(command("det", tmp_path, overrides), tmp_path / "log")
    wait_for(lambda: logged_iterations(tmp_path) >= 3, timeout=240, job=job)
    os.killpg(job.pid, signum)  # the main process and its data-loading worker, as a terminal's Ctrl-C or a scheduler
    job.wait(timeout=120)
    log = (tmp_path / "log").read_text()
    assert job.returncode == 0, log[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in log
    assert 3 <= saved_iteration(tmp_path) < 8

    train("det", tmp_path, overrides, resume=True)
    whole = torch.load(whole_dir / "model_final.pth", weights_only=True)
    resumed = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert resumed["iteration"] == whole["iteration"] == 8
    for key, value in whole["model"].items():
        assert torch.equal(resumed["model"][key], value), key


@pytest.mark.parametrize("target", ["one rank", "every process"])
def test_sigterm_under_torchrun_saves_and_resume_continues(tmp_path, tool, target, caplog, free_port):
    name, overrides = tool
    overrides = overrides + ["data.workers=1", LONG_RUN]
    job = start(command(name, tmp_path / "run", overrides, processes=2, port=free_port,
                        script=[EXIT_STATUS, TOOLS[name][2]]), tmp_path / "log")
    wait_for(lambda: logged_iterations(tmp_path / "run") >= 2, timeout=240, job=job)
    victims = [rank_processes(job.pid)[1]] if target == "one rank" else job_processes(job.pid)
    for pid in victims:  # every process: as a cluster's preemption signals the whole job
        os.kill(pid, signal.SIGTERM)
    job.wait(timeout=120)
    log = (tmp_path / "log").read_text()
    assert "rank 0 exited with 0" in log and "rank 1 exited with 0" in log, log[-3000:]
    # torchrun signalled itself re-raises the signal (SignalException) once its workers have ended
    assert job.returncode == (0 if target == "one rank" else 1), log[-3000:]
    assert "stopped by" in log, log[-3000:]
    stopped_at = saved_iteration(tmp_path / "run")
    assert 2 <= stopped_at < 200

    train(name, tmp_path / "run", overrides + [f"solver.max_iter={stopped_at + 2}"], resume=True)
    assert saved_iteration(tmp_path / "run") == stopped_at + 2
    assert "resuming a run of 2 process(es) with 1" in caplog.text


def test_resume_under_torchrun_continues_exactly(tmp_path, quick_overrides, free_port):
    """Each rank gets its own random generators back: the detector's RPN and RoI samplers draw from them."""
    overrides = quick_overrides + ["data.workers=1", "eval.draw_images=0", "solver.max_iter=4",
                                   "train.checkpoint_period=2", "data.batch_size=4"]

    def torchrun(output_dir: Path, resume: list[str]) -> None:
        result = subprocess.run(command("det", output_dir, overrides + resume, processes=2, port=free_port),
                                env=ENV, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    torchrun(tmp_path / "whole", [])
    shutil.copytree(tmp_path / "whole", tmp_path / "parts")
    (tmp_path / "parts/model_final.pth").unlink()
    (tmp_path / "parts/last_checkpoint").write_text("checkpoint_0000002.pth")  # as if stopped at iteration 2
    torchrun(tmp_path / "parts", ["--resume"])
    whole = torch.load(tmp_path / "whole/model_final.pth", weights_only=True)
    resumed = torch.load(tmp_path / "parts/model_final.pth", weights_only=True)
    assert resumed["iteration"] == whole["iteration"] == 4 and len(resumed["rng_per_rank"]) == 2
    assert [key for key, value in whole["model"].items() if not torch.equal(resumed["model"][key], value)] == []


def test_nan_on_one_rank_stops_every_rank_at_that_iteration(tmp_path, tool, free_port):
    name, overrides = tool
    arguments = command(name, tmp_path, overrides + [LONG_RUN], processes=2, port=free_port,
                        script=["tests/workbench/engine/faulty_training.py", name, "1", "3"])
    started = time.monotonic()
    result = subprocess.run(arguments, env=ENV, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode != 0 and time.monotonic() - started < 120, log[-3000:]
    assert log.count("non-finite loss at iteration 3 on 1 of 2 processes") == 2, log[-3000:]
    assert "stopped by" not in log


def test_killed_rank_ends_the_job_promptly(tmp_path, tool, free_port):
    name, overrides = tool
    job = start(command(name, tmp_path / "run", overrides + [LONG_RUN], processes=2, port=free_port), tmp_path / "log")
    wait_for(lambda: logged_iterations(tmp_path / "run") >= 2, timeout=240, job=job)
    ranks = rank_processes(job.pid)
    os.kill(ranks[1], signal.SIGKILL)
    job.wait(timeout=60)
    log = (tmp_path / "log").read_text()
    assert job.returncode != 0, log[-3000:]
    assert not Path(f"/proc/{ranks[0]}").exists() or "Z" in Path(f"/proc/{ranks[0]}/stat").read_text().split()[2]
    assert "stopped by" not in log


KILL_TRIALS = int(os.environ.get("WORKBENCH_KILL_TRIALS", "3"))  # the 20: WORKBENCH_KILL_TRIALS=20


@pytest.mark.parametrize("trial", range(KILL_TRIALS))
def test_sigkill_at_a_random_moment_leaves_a_checkpoint_that_loads_and_resumes(tmp_path, quick_cls_overrides, trial):
    overrides = quick_cls_overrides + [LONG_RUN, "train.checkpoint_period=1", "train.checkpoints_kept=2",
                                       "data.workers=1"]
    job = start(command("cls", tmp_path, overrides), tmp_path / "log")
    wait_for(lambda: (tmp_path / "last_checkpoint").is_file(), timeout=240, job=job)
    time.sleep(random.Random(trial).uniform(0.0, 2.0))  # during an iteration, a save or the rename
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    stopped_at = saved_iteration(tmp_path)  # the checkpoint the pointer names loads, whatever was half-written
    assert stopped_at >= 1
    train("cls", tmp_path, overrides + [f"solver.max_iter={stopped_at + 2}"], resume=True)
    assert saved_iteration(tmp_path) == stopped_at + 2
    assert len(list(tmp_path.glob("checkpoint_*.pth"))) <= 2
