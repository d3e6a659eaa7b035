"""Training and evaluating a detector on a user's own map-style datasets, from Python.

The datasets return torchvision's detection samples (`workbench.data.detection_samples`); the config (a YAML file,
a dict, or the defaults) gives everything else: the model, the solver, the output folder. The evaluation's ground
truth is built from the validation targets in the same pass as the predictions and written to
`<output_dir>/ground_truth.json`, so `tools/eval_det.py --gt` scores the saved `detections.json` against it.

    from workbench.tasks.dataset_training import train_detector
    results = train_detector(PennFudan("PennFudanPed", train=True), PennFudan("PennFudanPed", train=False),
                             ["person"], config="configs/mask_rcnn_r18_fpn_shapes_cpu.yaml",
                             overrides=["train.output_dir=output/pennfudan", "solver.max_iter=400"])
"""
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from workbench.config.loader import check_keys, merge
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.data.batching import aspect_ratio_groups
from workbench.data.dataset_summary import data_summary
from workbench.data.detection_samples import DetectionSamples
from workbench.engine import distributed, trainer
from workbench.tasks.detection import DetectionTask, parameter_count, report_evaluation


class DatasetDetectionTask(DetectionTask):
    """`DetectionTask` on a user's datasets (and optionally a model built by the user)."""

    def __init__(self, config: dict, train_set: Dataset, val_set: Dataset, class_names: Sequence[str],
                 model: nn.Module | None = None):
        super().__init__(config)
        self.datasets = (DetectionSamples(train_set, class_names, train=True, name="train_set"),
                         DetectionSamples(val_set, class_names, train=False, name="val_set"))
        self.model = model

    def build(self, device: torch.device) -> tuple[nn.Module, DetectionSamples, DetectionSamples]:
        model = self.make_model(device) if self.model is None else self.model.to(device)
        return model, *self.datasets

    def group_ids(self, train_set: DetectionSamples) -> list[int] | None:
        """Aspect-ratio groups when asked for and the dataset has torchvision's `get_height_and_width`."""
        grouped = self.config["data"]["group_by_aspect_ratio"] and hasattr(train_set, "get_height_and_width")
        return aspect_ratio_groups(train_set) if grouped else None

    def evaluate(self, model: nn.Module, val_set: DetectionSamples, device: torch.device, output_dir: Path,
                 final: bool) -> dict:
        return report_evaluation(model, val_set, None, device, self.config, output_dir, draw=final)

    def summary(self, model: nn.Module, train_set: DetectionSamples, val_set: DetectionSamples) -> str:
        if self.model is None:
            return super().summary(model, train_set, val_set)
        return f"{data_summary(train_set, val_set)}\nmodel: {type(model).__name__} (given), {parameter_count(model)}"


def detection_config(class_names: Sequence[str], config: str | Path | dict | None = None,
                     overrides: Sequence[str] = ()) -> dict:
    """The detection config for a user's data: the defaults, then `config` (a YAML file or a dict of the same
    keys), then `key=value` overrides; `model.num_classes` follows `class_names`, checked like a command line's."""
    defaults, config_file = DETECTION_DEFAULTS, config
    if isinstance(config, dict):
        check_keys(config, DETECTION_DEFAULTS, "config")
        defaults, config_file = merge(DETECTION_DEFAULTS, config), None
    return trainer.resolve_config(defaults, config_file, [*overrides, f"model.num_classes={len(class_names) + 1}"])


def train_detector(train_set: Dataset, val_set: Dataset, class_names: Sequence[str], *,
                   config: str | Path | dict | None = None, overrides: Sequence[str] = (),
                   model: nn.Module | None = None, resume: bool = False) -> dict:
    """Trains a detector on `train_set` and evaluates it on `val_set`, as `tools/train_det.py` does with a config.

    Args:
        train_set, val_set: map-style datasets of `(image, target)` samples in torchvision's detection convention
            (`workbench.data.detection_samples`), labels 1..K.
        class_names: the K class names of labels 1..K.
        config: a YAML config file or a dict of its keys (the data section's paths are not used); None takes the
            defaults.
        overrides: `key=value` strings, as on the command line (e.g. "solver.max_iter=400").
        model: a detector to train instead of the config's (a torchvision GeneralizedRCNN: K + 1 outputs).
        resume: continue from the last checkpoint of `train.output_dir`.

    Returns:
        The final evaluation, `{"bbox": {"stats": {...}, "per_category": {...}}, "segm": ...}` (empty on the other
        processes of a distributed run, and after a stop signal).
    """
    task = DatasetDetectionTask(detection_config(class_names, config, overrides), train_set, val_set, class_names,
                                model)
    return trainer.train(task, resume)


def evaluate_detector_on(model: nn.Module, dataset: Dataset, class_names: Sequence[str], output_dir: str | Path, *,
                         config: str | Path | dict | None = None, overrides: Sequence[str] = (),
                         device: str = "auto") -> dict:
    """The 12 COCO numbers and per-category AP of `model` on a user's dataset (its targets are the ground truth).

    Writes `ground_truth.json`, `detections.json`, `eval_results.json` and `predictions.png` to `output_dir`.
    The config's `eval` section (iou types, backend, batch size, pictures) applies; segm is evaluated when the model
    predicts masks and the targets have them.
    """
    settings = detection_config(class_names, config, overrides)
    settings["model"]["kind"] = "mask_rcnn" if model.roi_heads.has_mask() else "faster_rcnn"
    samples = DetectionSamples(dataset, class_names, train=False, name="dataset")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    selected = distributed.select_device(device)
    return report_evaluation(model.to(selected), samples, None, selected, settings, output_dir, draw=True)
