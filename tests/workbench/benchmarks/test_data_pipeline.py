"""The data case through tools/benchmark.py: our training pipeline and torchvision.transforms.v2's give the same
samples (flip off and always on) and both are timed, in one process and through a DataLoader."""
import json
import runpy
import sys


def test_pipelines_agree_and_are_timed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tools/benchmark.py", "data", "--images", "4", "--sizes", "48", "--repeats", "1",
                                      "--warmup", "0", "--workers", "1", "--output-dir", str(tmp_path)])
    runpy.run_path("tools/benchmark.py", run_name="__main__")
    assert capsys.readouterr().out.startswith("machine: ")
    rows = json.loads((tmp_path / "data.json").read_text())["rows"]
    assert [row["case"] for row in rows] == ["48 px, one process", "48 px, DataLoader 1 workers"]
    for row in rows:
        assert row["images"] == 4 and row["ratio"] > 0
        assert row["image_max_abs_diff"] <= 1e-6 and row["boxes_max_abs_diff"] <= 1e-5  # x / 255, flipped x / width
        assert row["labels_max_abs_diff"] == row["masks_max_abs_diff"] == 0
