"""Metrics files: a fresh run starts a fresh file, a resumed one continues it; curves of the losses and scores."""
import json

import matplotlib.image

from workbench.engine.metrics import MetricWriter, plot_curves, read_metrics


def write(output_dir, records, append):
    writer = MetricWriter(output_dir, append=append)
    for iteration, values in records:
        writer.write(iteration, values)
    writer.close()


def test_a_fresh_run_starts_a_fresh_file_and_a_resumed_run_continues_it(tmp_path):
    write(tmp_path, [(1, {"loss": 2.0}), (2, {"loss": 1.0})], append=False)
    write(tmp_path, [(1, {"loss": 3.0})], append=False)
    assert [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [3.0]
    write(tmp_path, [(2, {"loss": 2.5}), (3, {"loss": float("nan")})], append=True)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in lines] == [3.0, 2.5, None]


def test_a_score_logged_once_goes_to_the_title_not_a_panel(tmp_path):
    write(tmp_path, [(i, {"loss": 1.0 / i}) for i in range(1, 5)] + [(4, {"bbox/AP": 0.5})], append=False)
    one_panel = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "once.png", score_keys=("bbox/AP",))
    write(tmp_path, [(2, {"bbox/AP": 0.25})], append=True)
    two_panels = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "twice.png", score_keys=("bbox/AP",))
    assert matplotlib.image.imread(two_panels).shape[1] == 2 * matplotlib.image.imread(one_panel).shape[1]
