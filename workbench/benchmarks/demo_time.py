"""Time to the demo's AP: the demo's training run (configs/mask_rcnn_r18_fpn_shapes_cpu.yaml) of our detector
against the same run of torchvision's Mask R-CNN R18-FPN (`detector_train.torchvision_demo_detector`).

Both train on the same generated shapes with the same solver, batches and seed, and are evaluated every
`--eval-period` iterations (and at the end) with the 12 COCO numbers. A model's time to the AP is its training time,
the seconds per iteration the trainer logs (evaluations left out), up to the first evaluation at which box AP >=
`--box-ap` and mask AP >= `--mask-ap`; the ratio is torchvision's over ours, where both got there. Each run takes
minutes (the whole demo's training); the runs go one after the other, never side by side.
"""
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from backbones.old_paths import moved_names
from workbench.benchmarks.detector_train import DEMO_CONFIG, torchvision_demo_detector
from workbench.benchmarks.timing import machine_line, table, write_report
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.engine import trainer
from workbench.engine.metrics import read_metrics
from workbench.tasks.detection import DetectionTask

MODELS = ("ours", "torchvision")
COLUMNS = {"model": "model", "time_to_ap_s": "time to AP s", "iteration": "at iteration", "box_ap": "box AP there",
           "mask_ap": "mask AP there", "final_box_ap": "final box AP", "final_mask_ap": "final mask AP",
           "train_s": "training s", "seconds_per_iteration": "s/iteration", "ratio": "torchvision/ours"}


@dataclass
class DemoSettings:
    """What the `demo` case trains and the AP it waits for.

    Attributes:
        config: the demo's config, for both models.
        models: of MODELS.
        eval_period: iterations between evaluations.
        box_ap: the box AP to reach.
        mask_ap: the mask AP to reach.
        output_dir: where demo.json and .md go; the runs go to its demo/ folder.
        overrides: config overrides as key=value, for both models.
    """

    config: str = str(DEMO_CONFIG)
    models: tuple[str, ...] = MODELS
    eval_period: int = 120
    box_ap: float = 0.80
    mask_ap: float = 0.75
    output_dir: str = "output/benchmarks"
    overrides: tuple[str, ...] = ()


class TorchvisionDemoTask(DetectionTask):
    """The demo's detection task with torchvision's Mask R-CNN R18-FPN as the model."""

    def make_model(self, device: torch.device) -> torch.nn.Module:
        return torchvision_demo_detector(self.config["model"]["num_classes"]).to(device)


def time_to_ap(records: list[dict], box_ap: float, mask_ap: float) -> dict:
    """From a run's metrics records: the training seconds up to the first evaluation reaching both APs (None when
    none did), that evaluation's iteration and APs, the final APs and the whole training time."""
    elapsed, last_iteration = 0.0, 0
    reached = dict(time_to_ap_s=None, iteration=None, box_ap=None, mask_ap=None)
    curve = []
    for record in records:
        if record.get("time") is not None:
            elapsed += record["time"] * (record["iteration"] - last_iteration)
            last_iteration = record["iteration"]
        if record.get("bbox/AP") is not None:
            point = dict(iteration=record["iteration"], box_ap=record["bbox/AP"],
                         mask_ap=record.get("segm/AP") or 0.0)
            curve.append(point)
            if reached["time_to_ap_s"] is None and point["box_ap"] >= box_ap and point["mask_ap"] >= mask_ap:
                reached = dict(time_to_ap_s=elapsed, **point)
    final = curve[-1] if curve else {}
    return dict(reached, final_box_ap=final.get("box_ap"), final_mask_ap=final.get("mask_ap"), train_s=elapsed,
                seconds_per_iteration=elapsed / last_iteration if last_iteration else None, curve=curve)


def benchmark_demo(settings: DemoSettings) -> list[dict]:
    """Trains each model as the demo does, one after the other; prints and writes demo.json and .md."""
    folder = Path(settings.output_dir) / "demo"
    run = " ".join([Path(settings.config).name, *settings.overrides])
    lines = [machine_line(), (
        f"workload: the demo's training ({run}) of each model on the same shapes, solver and seed, evaluated every "
        f"{settings.eval_period} iterations; time to box AP >= {settings.box_ap} and mask AP >= {settings.mask_ap} in "
        f"training seconds (evaluations left out); ratio = torchvision s / ours s")]
    print(*lines, sep="\n", flush=True)
    rows = []
    for model in settings.models:
        config = load_config(DETECTION_DEFAULTS, settings.config, settings.overrides)
        config["train"].update(output_dir=str(folder / model), eval_period=settings.eval_period)
        config["data"]["root"] = str(folder / "shapes")
        task = (DetectionTask if model == "ours" else TorchvisionDemoTask)(config)
        print(f"training {model} for {config['solver']['max_iter']} iterations", flush=True)
        trainer.train(task)
        rows.append(dict(model=model, **time_to_ap(read_metrics(folder / model / "metrics.jsonl"), settings.box_ap,
                                                  settings.mask_ap)))
    times = {row["model"]: row["time_to_ap_s"] for row in rows}
    if times.get("ours") and times.get("torchvision"):
        rows[0]["ratio"] = times["torchvision"] / times["ours"]
    print(table(rows, COLUMNS))
    write_report(rows, settings.output_dir, "demo", lines=lines, columns=COLUMNS, options=asdict(settings))
    return rows


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "demo_arguments")})
