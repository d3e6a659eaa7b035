"""The `demo` case: time to the demo's AP from the trainer's metrics, and a tiny run of both models."""
import json
import runpy
import sys

import pytest

from workbench.benchmarks.demo_time import time_to_ap


def test_time_to_ap_counts_training_seconds_up_to_the_first_evaluation_reaching_both():
    records = [dict(iteration=10, time=0.5, loss=1.0), {"iteration": 20, "time": 0.25, "loss": 0.5},
               {"iteration": 20, "bbox/AP": 0.85, "segm/AP": 0.70},  # box reached, mask not yet
               dict(iteration=40, time=0.5), {"iteration": 40, "bbox/AP": 0.82, "segm/AP": 0.76}]
    result = time_to_ap(records, box_ap=0.80, mask_ap=0.75)
    assert result["time_to_ap_s"] == pytest.approx(5 + 2.5 + 10) and result["iteration"] == 40
    assert (result["box_ap"], result["mask_ap"]) == (0.82, 0.76)
    assert result["seconds_per_iteration"] == pytest.approx(17.5 / 40) and len(result["curve"]) == 2
    never = time_to_ap(records, box_ap=0.9, mask_ap=0.75)
    assert never["time_to_ap_s"] is None and never["final_box_ap"] == 0.82


def test_both_models_train_and_are_timed(tmp_path, monkeypatch, capsys):
    overrides = ["solver.max_iter=4", "solver.warmup_iters=1", "data.shapes.num_train=8", "data.shapes.num_val=4",
                 "data.workers=0", "train.log_period=2", "train.checkpoint_period=0", "eval.draw_images=0"]
    argv = ["tools/benchmark.py", "demo", "--eval-period", "2", "--box-ap", "0", "--mask-ap", "0", "--output-dir",
            str(tmp_path), *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("tools/benchmark.py", run_name="__main__")
    assert capsys.readouterr().out.startswith("machine: ")
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["ours", "torchvision"]
    for row in rows:
        assert row["iteration"] == 2 and row["time_to_ap_s"] > 0 and row["final_box_ap"] is not None
    assert rows[0]["ratio"] > 0
