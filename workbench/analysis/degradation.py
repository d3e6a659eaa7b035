"""The degradation problem (the paper's Fig. 6): plain and residual nets of two depths trained under one recipe,
training and test error against iterations.

The paper's claim: the deeper plain net has the higher training error (degradation), while the deeper ResNet has the
lower one. This tool measures it on whatever data the config names (default: the offline 32 px shapes set at a CPU
scale of minutes) and reports what it finds: a table (parameters, final training and test error), a one-line verdict,
`degradation.png`, and the layer_responses.py command that draws Fig. 7 from the same checkpoints.

The command line is `tools/degradation.py`.
"""
import re
from pathlib import Path

import matplotlib

import backbones
from workbench.config.checks import check_values
from workbench.config.loader import load_config
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.engine import trainer
from workbench.engine.metrics import read_metrics
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.classification_model import build_classifier

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from workbench.errors import UserError

DEFAULT_MODELS = ("plain20_cifar", "plain56_cifar", "resnet20_cifar", "resnet56_cifar")
FAMILIES = ("plain", "resnet")


def family_and_depth(name: str) -> tuple[str, int]:
    """("plain" | "resnet", depth) of a registered name such as plain56_cifar."""
    match = re.match(r"(plain|resnet)(\d+)", name)
    if not match:
        raise UserError(f"{name!r} is not a plain or residual net of the registry (e.g. plain56_cifar)")
    return match.group(1), int(match.group(2))


def train_models(models: list[str], config_path: str, output_dir: Path, overrides: list[str],
                 retrain: bool) -> dict[str, dict]:
    """Trains each model under the same recipe into output_dir/<model>, unless its model_final.pth exists and not
    `retrain`; returns the config of each run."""
    for name in models:
        family_and_depth(name)
        if name not in backbones.list_backbones():
            raise UserError(f"--models: {name!r} is not a registered backbone")
    configs = {}
    for name in models:
        run = output_dir / name
        configs[name] = check_values(load_config(CLASSIFICATION_DEFAULTS, config_path,
                                                 overrides + [f"model.backbone={name}"]))
        configs[name]["train"]["output_dir"] = str(run)
        if retrain or not (run / "model_final.pth").is_file():
            print(f"training {name} into {run}")
            trainer.train(ClassificationTask(configs[name]))
    return configs


def count_parameters(model_spec: dict) -> int:
    """Parameters of the classifier that config["model"] describes."""
    return sum(p.numel() for p in build_classifier(dict(model_spec, backbone_weights=None)).parameters())


def error_curves(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Training error (100 - train/top1, per log period) and test error (100 - val/top1) against iterations, and
    where the error-driven warm-up (solver.warmup_until_error) ended: [(iteration, training error)], or []."""
    records = read_metrics(metrics_path)
    return {
        "train": [(r["iteration"], 100 - r["train/top1"]) for r in records if r.get("train/top1") is not None],
        "test": [(r["iteration"], 100 - r["val/top1"]) for r in records if r.get("val/top1") is not None],
        "warmup_end": [(r["iteration"], 100 - r["train/top1"]) for r in records if r.get("warmup_ended")],
    }


def final_train_error(curve: list[tuple[int, float]], last: int = 5) -> float:
    """The mean training error of the last `last` log periods (one period is a few noisy batches); NaN if none."""
    return sum(error for _, error in curve[-last:]) / len(curve[-last:]) if curve else float("nan")


def plot_degradation(curves: dict[str, dict], path: Path) -> Path:
    """Fig. 6: one panel per family; thin dashed lines training error, bold lines test error, a colour per depth,
    a cross where the error-driven warm-up ended."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    depths = sorted({family_and_depth(name)[1] for name in curves})
    for name, curve in curves.items():
        family, depth = family_and_depth(name)
        axis, colour = axes[FAMILIES.index(family)], colours[depths.index(depth) % len(colours)]
        if curve["train"]:
            axis.plot(*zip(*curve["train"]), linestyle="--", linewidth=1, color=colour,
                      label=f"{family}-{depth} train")
        if curve["test"]:
            axis.plot(*zip(*curve["test"]), linewidth=2.5, color=colour, label=f"{family}-{depth} test")
        if curve.get("warmup_end"):
            axis.plot(*zip(*curve["warmup_end"]), marker="x", markersize=9, linestyle="none", color=colour)
    for axis, title in zip(axes, ("plain networks", "residual networks")):
        axis.set(xlabel="iteration", title=title)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # a family that did not run has an empty panel
            axis.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def summary_rows(curves: dict[str, dict], params: dict[str, int]) -> list[dict]:
    """Per model: family, depth, parameters, final training error (mean of the last log periods), final test error
    and the iteration where the error-driven warm-up ended (None without one)."""
    rows = []
    for name, curve in curves.items():
        family, depth = family_and_depth(name)
        rows.append(dict(model=name, family=family, depth=depth, params=params[name],
                         train_error=final_train_error(curve["train"]),
                         test_error=curve["test"][-1][1] if curve["test"] else float("nan"),
                         warmup_end=curve["warmup_end"][0][0] if curve.get("warmup_end") else None))
    return rows


def verdict(rows: list[dict]) -> str:
    """One line: does the deepest net of each family end with a higher training error than the shallowest (the
    paper: higher for plain nets, lower for ResNets)?"""
    parts = []
    for family, paper in (("plain", "higher"), ("resnet", "lower or equal")):
        members = sorted((row for row in rows if row["family"] == family), key=lambda row: row["depth"])
        if len(members) < 2:
            continue
        shallow, deep = members[0], members[-1]
        found = "higher" if deep["train_error"] > shallow["train_error"] else "lower or equal"
        parts.append(f"{family}-{deep['depth']} ends with {found} training error than {family}-{shallow['depth']} "
                     f"({deep['train_error']:.1f}% vs {shallow['train_error']:.1f}%), "
                     f"{'as in' if found == paper else 'unlike'} the paper")
    return "verdict: " + ("; ".join(parts) if parts else "no family has two depths to compare")


def format_rows(rows: list[dict]) -> str:
    """The summary as a table."""
    lines = [f"{'model':<16} {'depth':>5} {'params':>10} {'train err %':>11} {'test err %':>10} {'warm-up end':>11}"]
    lines += [f"{r['model']:<16} {r['depth']:>5} {r['params']:>10,} {r['train_error']:11.2f} {r['test_error']:10.2f} "
              f"{'-' if r.get('warmup_end') is None else r['warmup_end']:>11}" for r in rows]
    return "\n".join(lines)


def run_degradation(config_file: str, models: list[str], output_dir: str | Path, overrides: list[str] = (),
                    retrain: bool = False) -> list[dict]:
    """Trains each of `models` with the recipe of `config_file` (and `overrides`) in its folder of `output_dir`
    (unless its model_final.pth exists and not `retrain`); prints the table, the verdict and where the picture is;
    returns the table's rows."""
    output_dir = Path(output_dir)
    configs = train_models(models, config_file, output_dir, list(overrides), retrain)
    runs = {name: Path(config["train"]["output_dir"]) for name, config in configs.items()}
    curves = {name: error_curves(run / "metrics.jsonl") for name, run in runs.items()}
    picture = plot_degradation(curves, output_dir / "degradation.png")
    rows = summary_rows(curves, {name: count_parameters(config["model"]) for name, config in configs.items()})
    print(format_rows(rows))
    print(verdict(rows))
    print(f"picture: {picture}")
    checkpoints = " ".join(str(run / "model_final.pth") for run in runs.values())
    print(f"Fig. 7: python tools/layer_responses.py {checkpoints} --out {output_dir / 'layer_responses.png'}")
    return rows
