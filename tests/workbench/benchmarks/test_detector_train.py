"""The detector-train case through tools/benchmark.py: ours and torchvision's Mask R-CNN R50-FPN take the same first
training step from the same weights (equal losses, to float rounding), the demo pair runs, and the `--device cuda`
path on a GPU."""
import json
import runpy
import sys

import pytest
import torch

TINY = ["--images", "1", "--height", "64", "--width", "96", "--repeats", "1", "--warmup", "0"]


def run_case(tmp_path, monkeypatch, options: list[str]) -> list[dict]:
    monkeypatch.setattr(sys, "argv", ["tools/benchmark.py", "detector-train", *TINY, "--output-dir", str(tmp_path),
                                      *options])
    runpy.run_path("tools/benchmark.py", run_name="__main__")
    assert (tmp_path / "detector-train.md").read_text().startswith("machine: ")
    return json.loads((tmp_path / "detector-train.json").read_text())["rows"]


def test_same_weights_give_the_same_first_step_and_the_demo_pair_runs(tmp_path, monkeypatch, capsys):
    rows = run_case(tmp_path, monkeypatch, [])
    assert capsys.readouterr().out.startswith("machine: ")
    r50, demo = rows
    assert set(r50["losses"]["ours"]) == set(r50["losses"]["torchvision"])
    assert r50["max_rel_diff"] <= 1e-4  # random weights give losses in the hundreds
    assert "loss_mask" in r50["losses"]["ours"] and r50["ratio"] > 0
    assert r50["ours_step_mib"] > 0 and r50["torchvision_step_mib"] > 0  # resident memory on the CPU (Linux)
    assert demo["max_abs_diff"] is None and demo["ratio"] > 0 and demo["images"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_amp_channels_last_step(tmp_path, monkeypatch):
    rows = run_case(tmp_path, monkeypatch, ["--device", "cuda"])
    r50, demo = rows
    assert r50["max_rel_diff"] <= 1e-2  # fp16 autocast, the same kernels on the same weights
    for row in rows:
        assert row["ours_step_mib"] > 0 and row["torchvision_step_mib"] > 0
        assert row["ours_images_per_s"] > 0 and row["torchvision_images_per_s"] > 0
