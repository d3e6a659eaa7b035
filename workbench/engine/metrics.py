"""Training metrics: JSON lines, TensorBoard when installed, and curve pictures."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class MetricWriter:
    """Writes one JSON object per call to `metrics.jsonl` and mirrors scalars to TensorBoard when it is installed.

    A fresh run starts a fresh file; a resumed run (`append`) continues it.
    """

    def __init__(self, output_dir: str | Path, append: bool = False):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            self.path.write_text("")
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
    """Draws every `loss*` series against iterations and, beside them, the scores named in `score_keys` that were
    logged at two iterations or more; scores logged once (a final evaluation) go into the title instead."""
    records = read_metrics(metrics_path)
    series = {key: [(r["iteration"], r[key]) for r in records if r.get(key) is not None] for key in score_keys}
    curves = {key: points for key, points in series.items() if len(points) >= 2}
    once = {key: points[0][1] for key, points in series.items() if len(points) == 1}
    columns = 2 if curves else 1
    figure, axes = plt.subplots(1, columns, figsize=(6 * columns, 4), squeeze=False)
    loss_names = sorted({k for r in records for k in r if k.startswith(loss_prefix)})
    for name in loss_names:
        points = [(r["iteration"], r[name]) for r in records if r.get(name) is not None]
        axes[0][0].plot(*zip(*points), label=name, linewidth=2 if name == loss_prefix else 1)
    title = "training loss" + "".join(f", {key} {value:.3g}" for key, value in once.items())
    axes[0][0].set(xlabel="iteration", ylabel="loss", yscale="log", title=title)
    axes[0][0].legend(fontsize=8)
    if curves:
        for key, points in curves.items():
            axes[0][1].plot(*zip(*points), marker="o" if len(points) <= 30 else None, label=key)
        axes[0][1].set(xlabel="iteration", title="scores")
        axes[0][1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return Path(png_path)
