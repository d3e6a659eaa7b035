"""data.batch_size as the total batch of an iteration: each process's share, the refusal of a total that does not
divide, the linear scaling rule from solver.reference_batch_size, and both under torchrun."""
import os
import re
import subprocess
import sys

import pytest

from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS
from workbench.engine import trainer
from workbench.engine.recipe import micro_batch_size, recipe_line, scaled_to_batch
from workbench.errors import UserError

CONFIG = "configs/classification/resnet18_shapes_cls.yaml"


@pytest.mark.parametrize("batch_size, world_size, accumulate, expected", [
    (16, 1, 1, 16), (16, 8, 1, 2), (4, 2, 1, 2), (16, 2, 2, 4), (256, 8, 4, 8)])
def test_each_process_takes_its_share_of_the_total(batch_size, world_size, accumulate, expected):
    assert micro_batch_size(batch_size, world_size, accumulate) == expected


@pytest.mark.parametrize("batch_size, world_size, accumulate, message", [
    (3, 2, 1, r"data.batch_size=3 does not divide among 2 processes; set a multiple of 2 \(e.g. data.batch_size=4\)"),
    (6, 2, 2, r"data.batch_size=6 does not divide among 2 processes x solver.accumulate=2 micro-batches; set a "
              r"multiple of 4 \(e.g. data.batch_size=8\)"),
    (1, 8, 1, r"data.batch_size=1 does not divide among 8 processes; set a multiple of 8 \(e.g. data.batch_size=8\)")])
def test_a_total_that_does_not_divide_is_refused(batch_size, world_size, accumulate, message):
    with pytest.raises(UserError, match=message):
        micro_batch_size(batch_size, world_size, accumulate)


def config(batch_size: int, reference: int | None) -> dict:
    solver = dict(DETECTION_DEFAULTS["solver"], lr=0.02, max_iter=90000, steps=[60000, 80000], warmup_iters=1000,
                  reference_batch_size=reference)
    return dict(DETECTION_DEFAULTS, data=dict(DETECTION_DEFAULTS["data"], batch_size=batch_size), solver=solver,
                train=dict(DETECTION_DEFAULTS["train"], checkpoint_period=5000, eval_period=0))


def test_the_linear_scaling_rule_rescales_to_the_run_batch():
    scaled = scaled_to_batch(config(8, 16))
    solver, train = scaled["solver"], scaled["train"]
    assert solver["lr"] == pytest.approx(0.01) and solver["max_iter"] == 180000
    assert solver["steps"] == [120000, 160000] and solver["warmup_iters"] == 2000
    assert train["checkpoint_period"] == 10000 and train["eval_period"] == 0  # off stays off
    assert solver["reference_batch_size"] == 8 and scaled_to_batch(scaled) is scaled  # scaling twice: no change
    assert config(8, 16)["solver"]["lr"] == 0.02  # the input is left as it was


@pytest.mark.parametrize("reference", [None, 16])
def test_no_reference_or_the_same_batch_changes_nothing(reference):
    original = config(16, reference)
    assert scaled_to_batch(original) is original


def test_a_loaded_config_is_rescaled_to_its_batch():
    solver = trainer.resolve_config(CLASSIFICATION_DEFAULTS, CONFIG, ["data.batch_size=64",
                                                                      "solver.reference_batch_size=32"])["solver"]
    assert solver["lr"] == pytest.approx(0.04) and solver["max_iter"] == 750 and solver["reference_batch_size"] == 64


def test_the_recipe_line_states_processes_batch_lr_iterations_and_epochs():
    cls = dict(CLASSIFICATION_DEFAULTS, data=dict(CLASSIFICATION_DEFAULTS["data"], batch_size=256),
               solver=dict(CLASSIFICATION_DEFAULTS["solver"], lr=0.1, max_iter=5005, accumulate=2))
    assert recipe_line(cls, 8, 1281167) == ("effective recipe: 8 processes x 32 = total batch 256 (2 micro-batches "
                                            "of 16), lr 0.1, 5005 iterations = 1 epochs of 1281167 training images")


def torchrun(tmp_path, overrides: list[str], port: int) -> subprocess.CompletedProcess:
    """A 2-process gloo run of the shapes classifier that reports the images of each forward pass."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
         "tests/workbench/engine/counting_training.py", "--config", CONFIG, "--output-dir", str(tmp_path)]
        + overrides, env=dict(os.environ, PYTHONPATH=".", OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=300)


@pytest.mark.slow
def test_two_processes_share_the_total_batch_and_refuse_one_that_does_not_divide(tmp_path, quick_cls_overrides,
                                                                                   free_port):
    overrides = quick_cls_overrides + ["solver.max_iter=2"]
    result = torchrun(tmp_path / "run", overrides + ["data.batch_size=4"], free_port)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert log.count("effective recipe: 2 processes x 2 = total batch 4, lr 0.02, 2 iterations") == 1, log[-3000:]
    for rank in (0, 1):
        assert log.count(f"rank {rank} trained on 2 images") == 2, log[-3000:]
    assert "trained on 4 images" not in log

    result = torchrun(tmp_path / "refused", overrides + ["data.batch_size=3"], free_port)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "error: data.batch_size=3 does not divide among 2 processes; set a multiple of 2 (e.g. data.batch_size=4)" \
        in result.stderr, log[-3000:]
    assert not re.search(r'File "[^"]*workbench/', log) and "trained on" not in log  # no traceback of ours, no work
