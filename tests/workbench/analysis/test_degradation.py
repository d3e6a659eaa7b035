"""Fig. 6 tool: curves from metrics files, the table and verdict, and a tiny run of plain and residual nets."""
import json

import pytest

from workbench.analysis import degradation


def write_metrics(path, train_errors, test_errors):
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for i, error in enumerate(train_errors):
            f.write(json.dumps({"iteration": 10 * (i + 1), "loss": 1.0, "train/top1": 100 - error}) + "\n")
        for i, error in enumerate(test_errors):
            f.write(json.dumps({"iteration": 20 * (i + 1), "val/top1": 100 - error, "val/top5": 100}) + "\n")
    return path / "metrics.jsonl"


def synthetic_rows(tmp_path, train_errors):
    curves = {name: degradation.error_curves(write_metrics(tmp_path / name, train, [35, 30]))
              for name, train in train_errors.items()}
    return curves, degradation.summary_rows(curves, {name: 1000 for name in curves})


def test_verdict_reports_degradation_of_the_deeper_plain_net(tmp_path):
    curves, rows = synthetic_rows(tmp_path, {"plain20_cifar": [50, 30], "plain56_cifar": [60, 40],
                                             "resnet20_cifar": [50, 30], "resnet56_cifar": [45, 20]})
    assert [r["train_error"] for r in rows] == [40, 50, 40, 32.5] and rows[0]["test_error"] == 30
    text = degradation.verdict(rows)
    assert text.count("\n") == 0
    assert "plain-56 ends with higher training error than plain-20 (50.0% vs 40.0%), as in the paper" in text
    assert "resnet-56 ends with lower or equal training error than resnet-20 (32.5% vs 40.0%), as in the paper" in text
    assert "plain56_cifar       56      1,000       50.00      30.00" in degradation.format_rows(rows)
    assert degradation.plot_degradation(curves, tmp_path / "fig6.png").is_file()


def test_the_end_of_the_error_warmup_is_in_the_table_and_the_picture(tmp_path):
    metrics = write_metrics(tmp_path / "resnet56_cifar", [90, 70, 40], [35])
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    records[1]["warmup_ended"] = 1.0
    metrics.write_text("".join(json.dumps(record) + "\n" for record in records))
    curves = {"resnet56_cifar": degradation.error_curves(metrics)}
    assert curves["resnet56_cifar"]["warmup_end"] == [(20, 70)]
    rows = degradation.summary_rows(curves, {"resnet56_cifar": 1000})
    assert rows[0]["warmup_end"] == 20 and degradation.format_rows(rows).splitlines()[1].endswith(" 20")
    assert degradation.plot_degradation(curves, tmp_path / "fig6.png").is_file()


def test_verdict_says_when_the_numbers_disagree_with_the_paper(tmp_path):
    _, rows = synthetic_rows(tmp_path, {"plain20_cifar": [50], "plain56_cifar": [40], "resnet20_cifar": [50],
                                        "resnet56_cifar": [80]})
    text = degradation.verdict(rows)
    assert "plain-56 ends with lower or equal training error than plain-20 (40.0% vs 50.0%), unlike the paper" in text
    assert "resnet-56 ends with higher training error than resnet-20 (80.0% vs 50.0%), unlike the paper" in text
    assert degradation.verdict(rows[:1]) == "verdict: no family has two depths to compare"


@pytest.mark.parametrize("name, message", [("vgg16", "'vgg16' is not a plain or residual net"),
                                           ("plain57_cifar", "'plain57_cifar' is not a registered backbone")])
def test_unknown_models_are_refused_before_any_training(tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        degradation.train_models(["resnet20_cifar", name], "configs/classification/degradation_shapes_cpu.yaml",
                                 tmp_path, [], retrain=False)
    assert not (tmp_path / "resnet20_cifar").exists()


def test_tiny_run_trains_each_model_once(tmp_path, quick_cls_overrides, capsys):
    overrides = quick_cls_overrides + ["solver.max_iter=2", "train.eval_period=1", "eval.batch_size=20"]
    args = ("configs/classification/degradation_shapes_cpu.yaml", ["plain20_cifar", "resnet20_cifar"], tmp_path,
            overrides)
    rows = degradation.run_degradation(*args)
    assert [(r["model"], r["depth"]) for r in rows] == [("plain20_cifar", 20), ("resnet20_cifar", 20)]
    assert rows[0]["params"] == rows[1]["params"] > 200_000  # option A shortcuts have no parameters
    output = capsys.readouterr().out
    assert (tmp_path / "degradation.png").is_file() and "train err %" in output and "verdict:" in output
    assert f"layer_responses.py {tmp_path / 'plain20_cifar/model_final.pth'}" in output
    assert len(degradation.error_curves(tmp_path / "resnet20_cifar/metrics.jsonl")["test"]) == 2
    stamp = (tmp_path / "resnet20_cifar/model_final.pth").stat().st_mtime_ns
    degradation.run_degradation(*args)  # re-plots without retraining
    assert (tmp_path / "resnet20_cifar/model_final.pth").stat().st_mtime_ns == stamp
