"""Training metrics: JSON lines, TensorBoard when installed, and curve pictures."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class MetricWriter:
    """Appends one JSON object per call to `metrics.jsonl` and mirrors scalars to TensorBoard when it is installed."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(Path(output_dir) / "tensorboard"))
        except ImportError:
            self.tensorboard = None

    def write(self, iteration: int, values: dict[str, float]) -> None:
        """Records `values` at `iteration`; undefined (NaN) values are written as null and skipped in TensorBoard."""
        defined = {name: value for name, value in values.items() if not math.isnan(value)}
        record = dict(iteration=iteration, **{name: defined.get(name) for name in values})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for name, value in defined.items():
                self.tensorboard.add_scalar(name, value, iteration)

    def close(self) -> None:
        """Flushes TensorBoard."""
        if self.tensorboard is not None:
            self.tensorboard.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl; after a resume, later records of an iteration replace earlier ones."""
    by_key: dict[tuple, dict] = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            by_key[(record["iteration"], tuple(sorted(record)))] = record
    return sorted(by_key.values(), key=lambda r: r["iteration"])


def plot_curves(metrics_path: str | Path, png_path: str | Path, loss_prefix: str = "loss",
                score_keys: tuple[str, ...] = ()) -> Path:
    """Draws every `loss*` series against iterations and, beside them, the evaluation scores named in `score_keys`."""
    records = read_metrics(metrics_path)
    score_records = [r for r in records if any(k in r for k in score_keys)]
    columns = 2 if score_records else 1
    figure, axes = plt.subplots(1, columns, figsize=(6 * columns, 4), squeeze=False)
    loss_names = sorted({k for r in records for k in r if k.startswith(loss_prefix)})
    for name in loss_names:
        points = [(r["iteration"], r[name]) for r in records if r.get(name) is not None]
        axes[0][0].plot(*zip(*points), label=name, linewidth=2 if name == loss_prefix else 1)
    axes[0][0].set(xlabel="iteration", ylabel="loss", yscale="log", title="training loss")
    axes[0][0].legend(fontsize=8)
    if score_records:
        for key in score_keys:
            points = [(r["iteration"], r[key]) for r in score_records if r.get(key) is not None]
            if points:
                axes[0][1].plot(*zip(*points), marker="o" if len(points) <= 30 else None, label=key)
        axes[0][1].set(xlabel="iteration", title="scores")
        axes[0][1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return Path(png_path)
