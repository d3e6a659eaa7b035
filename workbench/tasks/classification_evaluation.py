"""Evaluate a classifier: top-1/top-5, per-class accuracy and a confusion matrix, center-crop or 10-crop.

Two inputs:
- a train_cls.py checkpoint (`from_checkpoint`: its config says the model and the data);
- a config and any weights `backbones.load_weights` reads (torchvision, timm, ours...) for its model (`from_weights`).

The command line is `tools/eval_cls.py`.

10-crop testing is the paper's Table 3 protocol: the four corners and the center of the resized image, and their
horizontal flips, scored by the mean of the ten softmax outputs.
"""
from pathlib import Path

from torch import nn

from workbench.config.loader import load_config, merge
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.data.classification_transforms import ten_crop_transform
from workbench.engine import distributed
from workbench.errors import UserError
from workbench.evaluation.classifier import format_per_class, format_summary
from workbench.tasks.classification import build_datasets, eval_sizes, normalisation, report_evaluation
from workbench.tasks.classification_model import classifier_from_weights, load_classifier


def from_checkpoint(checkpoint: str, overrides: list[str] = ()) -> tuple[nn.Module, dict]:
    """The classifier of a train_cls.py checkpoint and its config, with `overrides`."""
    model, saved = load_classifier(checkpoint)
    return model, load_config(merge(CLASSIFICATION_DEFAULTS, saved), None, overrides)


def from_weights(config_file: str, weights: str, overrides: list[str] = ()) -> tuple[nn.Module, dict]:
    """The classifier of `config_file` (with `overrides`) with `weights` of any format, and the config."""
    config = load_config(CLASSIFICATION_DEFAULTS, config_file, overrides)
    return classifier_from_weights(config["model"], weights), config


def evaluate(model: nn.Module, config: dict, output_dir: str | Path, ten_crop: bool = False) -> dict:
    """Scores `model` on the validation split of `config`, center-crop or 10-crop; prints the per-class table and
    the summary, and writes results and the confusion matrix to `output_dir`."""
    try:
        device = distributed.select_device(config["train"]["device"])
        model = model.to(device)
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        val_transform, suffix = None, ""
        if ten_crop:
            resize, crop = eval_sizes(config["data"], model)
            if crop is None:
                raise UserError("--ten-crop needs a crop smaller than the image: set data.eval_crop (and "
                                 "data.eval_resize), e.g. data.eval_resize=36 data.eval_crop=32")
            val_transform = ten_crop_transform(resize, crop, *normalisation(config["data"], model))
            config = merge(config, {"eval": {"batch_size": max(1, config["eval"]["batch_size"] // 10)}})
            suffix = "_10crop"
        _, val_set = build_datasets(config, model, val_transform, with_train=False)
        results = report_evaluation(model, val_set, device, config, output_dir, final=True, suffix=suffix)
        if distributed.is_main_process():
            print(format_per_class(results))
            print(("10-crop: " if ten_crop else "center crop: ") + format_summary(results))
            print(f"results and confusion matrix: {output_dir}")
        return results
    finally:
        distributed.cleanup()
