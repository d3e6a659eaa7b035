"""The degradation problem (the paper's Fig. 6): plain and residual nets of two depths trained under one recipe,
training and test error against iterations.

The paper's claim: the deeper plain net has the higher training error (degradation), while the deeper ResNet has the
lower one. This tool measures it on whatever data the config names (default: the offline 32 px shapes set at a CPU
scale of minutes) and reports what it finds.

Examples:
    python tools/degradation.py                                          # plain/ResNet-20/56 on shapes, CPU
    python tools/degradation.py --config configs/classification/resnet20_cifar10.yaml --output-dir output/fig6 \
        data.holdout=0 train.eval_period=2000
    python tools/degradation.py solver.max_iter=900 --models plain20_cifar plain110_cifar resnet20_cifar resnet110_cifar
"""
import argparse
import re
from pathlib import Path

import matplotlib

import train_cls
from config import load_config
from metrics import read_metrics

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_MODELS = ("plain20_cifar", "plain56_cifar", "resnet20_cifar", "resnet56_cifar")
FAMILIES = ("plain", "resnet")


def family_and_depth(name: str) -> tuple[str, int]:
    """("plain" | "resnet", depth) of a registered name such as plain56_cifar."""
    match = re.match(r"(plain|resnet)(\d+)", name)
    if not match:
        raise ValueError(f"{name!r} is not a plain or residual net of the registry (e.g. plain56_cifar)")
    return match.group(1), int(match.group(2))


def train_models(models: list[str], config_path: str, output_dir: Path, overrides: list[str],
                 retrain: bool) -> dict[str, Path]:
    """Trains each model under the same recipe into output_dir/<model>; returns the run folders."""
    runs = {}
    for name in models:
        family_and_depth(name)
        run = output_dir / name
        if retrain or not (run / "model_final.pth").is_file():
            config = load_config(train_cls.DEFAULTS, config_path,
                                 overrides + [f"model.name={name}", f"train.output_dir={run}"])
            print(f"training {name} into {run}")
            train_cls.train(config)
        runs[name] = run
    return runs


def error_curves(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Training error (100 - train/top1, per log period) and test error (100 - val/top1) against iterations."""
    records = read_metrics(metrics_path)
    return {
        "train": [(r["iteration"], 100 - r["train/top1"]) for r in records if r.get("train/top1") is not None],
        "test": [(r["iteration"], 100 - r["val/top1"]) for r in records if r.get("val/top1") is not None],
    }


def final_train_error(curve: list[tuple[int, float]], last: int = 5) -> float:
    """The mean training error of the last `last` log periods (one period is a few noisy batches)."""
    return sum(error for _, error in curve[-last:]) / len(curve[-last:])


def plot_degradation(curves: dict[str, dict], path: Path) -> Path:
    """Fig. 6: one panel per family; thin dashed lines training error, bold lines test error, a colour per depth."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    depths = sorted({family_and_depth(name)[1] for name in curves})
    for name, curve in curves.items():
        family, depth = family_and_depth(name)
        axis, colour = axes[FAMILIES.index(family)], colours[depths.index(depth) % len(colours)]
        axis.plot(*zip(*curve["train"]), linestyle="--", linewidth=1, color=colour, label=f"{family}-{depth} train")
        if curve["test"]:
            axis.plot(*zip(*curve["test"]), linewidth=2.5, color=colour, label=f"{family}-{depth} test")
    for axis, title in zip(axes, ("plain networks", "residual networks")):
        axis.set(xlabel="iteration", title=title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def summary_rows(curves: dict[str, dict]) -> list[dict]:
    """Per model: family, depth, final training error (mean of the last log periods) and final test error."""
    rows = []
    for name, curve in curves.items():
        family, depth = family_and_depth(name)
        rows.append(dict(model=name, family=family, depth=depth, train_error=final_train_error(curve["train"]),
                         test_error=curve["test"][-1][1] if curve["test"] else float("nan")))
    return rows


def verdict(rows: list[dict]) -> str:
    """Whether the deeper net of each family ends with a higher training error than the shallower one."""
    lines = []
    for family in FAMILIES:
        members = sorted((row for row in rows if row["family"] == family), key=lambda row: row["depth"])
        if len(members) < 2:
            continue
        shallow, deep = members[0], members[-1]
        worse = deep["train_error"] > shallow["train_error"]
        lines.append(f"{family}: {deep['depth']} layers end with {'HIGHER' if worse else 'lower or equal'} training "
                     f"error than {shallow['depth']} ({deep['train_error']:.1f}% vs {shallow['train_error']:.1f}%)"
                     + (" - degradation" if worse else ""))
    return "\n".join(lines)


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'model':<16} {'depth':>5} {'train err %':>11} {'test err %':>10}"]
    lines += [f"{r['model']:<16} {r['depth']:>5} {r['train_error']:11.2f} {r['test_error']:10.2f}" for r in rows]
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/classification/degradation_shapes_cpu.yaml",
                        help="train_cls.py config: the recipe every model trains with")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="plain and residual models")
    parser.add_argument("--output-dir", default="output/degradation", help="one folder per model, and the picture")
    parser.add_argument("--retrain", action="store_true", help="train again even where model_final.pth exists")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. solver.max_iter=300")
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    output_dir = Path(args.output_dir)
    runs = train_models(args.models, args.config, output_dir, list(args.overrides), args.retrain)
    curves = {name: error_curves(run / "metrics.jsonl") for name, run in runs.items()}
    picture = plot_degradation(curves, output_dir / "degradation.png")
    rows = summary_rows(curves)
    print(format_rows(rows))
    print(verdict(rows))
    print(f"picture: {picture}")
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())
