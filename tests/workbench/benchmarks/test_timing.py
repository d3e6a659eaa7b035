"""The benchmark harness: the machine line, alternating timing, output differences, the JSON and markdown report, and
a tiny run of the backbone case through tools/benchmark.py (and of its `--device cuda` path on a GPU)."""
import json
import runpy
import sys

import pytest
import torch

import backbones
from workbench.benchmarks import timing
from workbench.benchmarks.backbone import FROZEN_STAGES


def test_machine_line_names_cpu_capability_threads_gpu_and_torch():
    line = timing.machine_line()
    assert line.startswith("machine: ")
    assert torch.backends.cpu.get_cpu_capability() in line
    assert f"{torch.get_num_threads()} torch threads" in line
    assert ("no GPU" in line) == (not torch.cuda.is_available())
    assert f"torch {torch.__version__}" in line


def test_alternate_turns_the_order_and_times_after_warmup():
    calls = []
    runs = {name: (lambda name=name: calls.append(name) or name) for name in "abc"}
    times, outputs = timing.alternate(runs, repeats=4, warmup=2)
    assert calls[:3] == list("abc") and calls[3:6] == list("bca") and calls[6:9] == list("cab")
    assert len(calls) == 18 and all(len(t) == 4 for t in times.values())
    assert outputs == {"a": "a", "b": "b", "c": "c"}
    assert timing.medians({"a": [3.0, 1.0, 2.0]}) == {"a": 2.0}
    with pytest.raises(ValueError):
        timing.alternate(runs, repeats=0)


def test_differences_of_nested_outputs():
    a = {"0": torch.zeros(2, 3), "1": [torch.ones(4)]}
    b = [torch.zeros(2, 3), torch.full((4,), 1.5)]
    assert timing.max_abs_difference(a, b) == 0.5
    assert timing.max_relative_difference(a, b) == pytest.approx(0.5 / 1.5)
    assert timing.max_abs_difference(torch.zeros(2), torch.zeros(3)) == float("inf")


@pytest.mark.skipif(not timing.PROC_CLEAR_REFS.is_file(), reason="needs Linux' /proc/self/clear_refs")
def test_peak_memory_is_what_a_call_holds_at_once_not_what_earlier_calls_freed():
    def hold(megabytes: int, at_once: int) -> int:
        blocks = [torch.ones(megabytes * 2**18) for _ in range(at_once)]  # 2**18 float32 = 1 MiB
        return len(blocks)

    assert timing.peak_memory_mib(lambda: hold(64, 2))[1] == pytest.approx(128, abs=16)
    output, peak = timing.peak_memory_mib(lambda: hold(32, 1))
    assert output == 1 and peak == pytest.approx(32, abs=8)


@pytest.mark.skipif(not timing.PROC_CLEAR_REFS.is_file(), reason="needs Linux' /proc/self/clear_refs")
def test_peak_after_warmup_counts_what_a_model_rebuilds_not_the_first_runs_setup():
    model = torch.nn.Linear(2**10, 2**10)  # 4 MiB of weights: 4 MiB of gradients
    state = {"setup": None}

    def first_run_sets_up() -> int:
        if state["setup"] is None:
            state["setup"] = torch.ones(64 * 2**18)  # 64 MiB that only the process's first call allocates
        model(torch.ones(1, 2**10)).sum().backward()
        return 1

    firsts, peaks = timing.peak_memory_after_warmup({"model": first_run_sets_up, "other": lambda: 2},
                                                   {"model": model})
    assert firsts == {"model": 1, "other": 2}
    assert peaks["model"] == pytest.approx(4, abs=3) and peaks["other"] < 3


def test_write_report_writes_json_and_markdown(tmp_path):
    rows = [dict(case="x", ours_ms=1.5, ratio=1.3456, samples=[1.0, 2.0]), dict(case="y", ours_ms=250.0, ratio=0.9,
                                                                                 samples=[3.0])]
    json_path, md_path = timing.write_report(rows, tmp_path / "out", "case", lines=["workload: test"],
                                             options={"repeats": 3})
    document = json.loads(json_path.read_text())
    assert document["machine"].startswith("machine: ") and document["lines"] == ["workload: test"]
    assert document["rows"][0]["samples"] == [1.0, 2.0] and document["options"] == {"repeats": 3}
    markdown = md_path.read_text()
    assert markdown.startswith("machine: ") and "| case | ours_ms | ratio |" in markdown
    assert "| x | 1.50 | 1.35 |" in markdown
    assert "samples" not in markdown


def test_backbone_case_runs_end_to_end(tmp_path, monkeypatch, capsys):
    argv = ["tools/benchmark.py", "backbone", "--model", "resnet18", "--mode", "eval", "train", "--batch", "1",
            "--size", "64", "--repeats", "1", "--warmup", "0", "--output-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("tools/benchmark.py", run_name="__main__")
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "torchvision/ours" in out
    rows = json.loads((tmp_path / "backbone.json").read_text())["rows"]
    assert [(r["mode"], r["batch"]) for r in rows] == [("eval", 1), ("train", 1)]
    trainable = backbones.create_backbone("resnet18", features_only=True, frozen_stages=FROZEN_STAGES)
    gradients_mib = sum(p.numel() * 4 for p in trainable.parameters() if p.requires_grad) / 2 ** 20  # 42 MiB
    for row in rows:
        assert row["torchvision_max_rel_diff"] <= 1e-5 and row["timm_max_rel_diff"] <= 1e-5
        assert row["unfused_max_rel_diff"] <= 1e-5 and row["torchvision_ratio"] > 0
        peaks = [row[f"{label}_peak_mib"] for label in ("ours", "torchvision", "timm")]
        if row["mode"] == "train":  # each model's gradients are dropped before its measured call, which makes them
            assert all(peak > gradients_mib for peak in peaks), (peaks, gradients_mib)
        else:  # ours folds BatchNorm into a cache that the measured call builds again
            assert all(peak > 0 for peak in peaks) and row["ours_peak_mib"] > row["fused_cache_mib"] > 0, row
    assert (tmp_path / "backbone.md").read_text().startswith("machine: ")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_backbone_case_on_the_gpu(tmp_path, monkeypatch):
    argv = ["tools/benchmark.py", "backbone", "--model", "resnet18", "--mode", "eval", "train", "--batch", "2",
            "--size", "64", "--repeats", "1", "--warmup", "0", "--device", "cuda", "--output-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("tools/benchmark.py", run_name="__main__")
    rows = json.loads((tmp_path / "backbone.json").read_text())["rows"]
    assert [(r["mode"], r["batch"]) for r in rows] == [("eval", 2), ("train", 2)]
    for row in rows:  # fp16 autocast, channels_last
        assert row["torchvision_max_rel_diff"] <= 2e-2 and row["timm_max_rel_diff"] <= 2e-2
