"""Evaluate a classifier: top-1/top-5, per-class accuracy and a confusion matrix, center-crop or 10-crop.

Two inputs:
- `--checkpoint`: a train_cls.py checkpoint (its config says the model and the data);
- `--config` and `--weights`: any weights `backbones.load_weights` reads (torchvision, timm, ours...) for the model
  and data of a config.

The command line is `tools/eval_cls.py`.

`--ten-crop` is the paper's Table 3 protocol: the four corners and the center of the resized image, and their
horizontal flips, scored by the mean of the ten softmax outputs.
"""
import argparse
from pathlib import Path

from workbench.config.loader import load_config, merge
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.data.classification_transforms import ten_crop_transform
from workbench.engine import distributed
from workbench.errors import UserError
from workbench.evaluation.classifier import format_per_class, format_summary
from workbench.tasks.classification import build_datasets, eval_sizes, normalisation, report_evaluation
from workbench.tasks.classification_model import classifier_from_weights, load_classifier


def load_model_and_config(args: argparse.Namespace):
    """The model with its weights and the config (the checkpoint's or the file's, with the overrides)."""
    if args.checkpoint:
        if args.config or args.weights:
            raise UserError("give --checkpoint alone, or --config with --weights")
        model, saved = load_classifier(args.checkpoint)
        return model, load_config(merge(CLASSIFICATION_DEFAULTS, saved), None, args.overrides), Path(args.checkpoint)
    if not (args.config and args.weights):
        raise UserError("give --checkpoint (a train_cls.py checkpoint) or --config with --weights")
    config = load_config(CLASSIFICATION_DEFAULTS, args.config, args.overrides)
    return classifier_from_weights(config["model"], args.weights), config, Path(args.weights)


def evaluate(args: argparse.Namespace) -> dict:
    """Scores a train_cls.py checkpoint, or weights with a config, center-crop or 10-crop."""
    model, config, weights = load_model_and_config(args)
    try:
        device = distributed.select_device(config["train"]["device"])
        model = model.to(device)
        output_dir = Path(args.output_dir or weights.parent)
        output_dir.mkdir(parents=True, exist_ok=True)
        val_transform, suffix = None, ""
        if args.ten_crop:
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
            print(("10-crop: " if args.ten_crop else "center crop: ") + format_summary(results))
            print(f"results and confusion matrix: {output_dir}")
        return results
    finally:
        distributed.cleanup()
