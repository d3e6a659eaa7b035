"""Fig. 6 tool: curves from metrics files, the verdict, and a tiny run of plain and residual nets."""
import json

import pytest

import degradation


def write_metrics(path, train_errors, test_errors):
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for i, error in enumerate(train_errors):
            f.write(json.dumps({"iteration": 10 * (i + 1), "loss": 1.0, "train/top1": 100 - error}) + "\n")
        for i, error in enumerate(test_errors):
            f.write(json.dumps({"iteration": 20 * (i + 1), "val/top1": 100 - error, "val/top5": 100}) + "\n")
    return path / "metrics.jsonl"


def test_verdict_reports_degradation_of_the_deeper_plain_net(tmp_path):
    errors = {"plain20_cifar": [50, 30], "plain56_cifar": [60, 40], "resnet20_cifar": [50, 30],
              "resnet56_cifar": [45, 20]}
    curves = {name: degradation.error_curves(write_metrics(tmp_path / name, train, [35]))
              for name, train in errors.items()}
    rows = degradation.summary_rows(curves)
    assert [r["train_error"] for r in rows] == [40, 50, 40, 32.5] and rows[0]["test_error"] == 35
    text = degradation.verdict(rows)
    assert "plain: 56 layers end with HIGHER training error than 20 (50.0% vs 40.0%) - degradation" in text
    assert "resnet: 56 layers end with lower or equal training error" in text
    assert degradation.plot_degradation(curves, tmp_path / "fig6.png").is_file()


def test_names_outside_the_two_families_are_refused():
    with pytest.raises(ValueError, match="'vgg16' is not a plain or residual net"):
        degradation.family_and_depth("vgg16")


def test_tiny_run_trains_each_model_once(tmp_path, quick_cls_overrides, capsys):
    args = ["--models", "plain20_cifar", "resnet20_cifar", "--output-dir", str(tmp_path),
            "--config", "configs/classification/degradation_shapes_cpu.yaml"]
    overrides = quick_cls_overrides + ["solver.max_iter=2", "train.eval_period=1"]
    rows = degradation.main(degradation.get_args_parser().parse_args(overrides + args))
    assert [r["model"] for r in rows] == ["plain20_cifar", "resnet20_cifar"]
    assert (tmp_path / "degradation.png").is_file() and "plain20_cifar" in capsys.readouterr().out
    stamp = (tmp_path / "resnet20_cifar/model_final.pth").stat().st_mtime_ns
    degradation.main(degradation.get_args_parser().parse_args(overrides + args))  # re-plots without retraining
    assert (tmp_path / "resnet20_cifar/model_final.pth").stat().st_mtime_ns == stamp
