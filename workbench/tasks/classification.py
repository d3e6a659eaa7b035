"""Classification as a config describes it: class folders, CIFAR-10/100 or the synthetic shapes set, any registered
backbone with its head, its training step, and top-1/top-5 evaluation with a confusion matrix.

The final checkpoint loads as `pretrained=` into `create_backbone` and as `model.backbone_weights` into any detector
config.
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from backbones.normalization import unit_range_normalization
from workbench.data.classification import build_classification_datasets
from workbench.data.classification_transforms import eval_transform, train_transform
from workbench.engine import distributed
from workbench.engine.trainer import Task
from workbench.errors import UserError
from workbench.evaluation.classifier import evaluate_classifier, format_per_class, format_summary, plot_confusion
from workbench.evaluation.results import save_results
from workbench.tasks.classification_model import build_classifier

SCORES = ("top1", "top5", "loss")


def normalisation(data: dict, model: nn.Module) -> tuple[tuple, tuple, str]:
    """(mean, std, channel_order) of the transforms, which feed RGB pixels in 0-1 (flipped to BGR for BGR weights):
    the model's pretrained_cfg in those units (`backbones.normalization.unit_range_normalization`); data.mean /
    data.std, when set, replace its mean / std and are in the same units and channel order."""
    mean, std, channel_order = unit_range_normalization(model.pretrained_cfg)
    return tuple(data["mean"] or mean), tuple(data["std"] or std), channel_order


def eval_sizes(data: dict, model: nn.Module) -> tuple[int | None, int | None]:
    """(resize, crop) of evaluation: data.eval_resize / data.eval_crop (null: the image as it is), or, when
    eval_crop is "pretrained", the pretrained config's test size (`test_input_size`, else `input_size`) and
    crop_pct (e.g. 256 and 224; 232 and 224 for torchvision's V2 weights)."""
    if data["eval_crop"] == "pretrained":
        cfg = model.pretrained_cfg
        crop = cfg.get("test_input_size", cfg["input_size"])[-1]
        return round(crop / cfg["crop_pct"]), crop
    return data["eval_resize"], data["eval_crop"]


def build_datasets(config: dict, model: nn.Module, val_transform=None, with_train: bool = True):
    """The training and validation sets of the config (the training set None unless `with_train`);
    `val_transform` replaces the center-crop evaluation."""
    data = config["data"]
    normalising = normalisation(data, model)
    if val_transform is None:
        val_transform = eval_transform(*eval_sizes(data, model), *normalising)
    train_set, val_set = build_classification_datasets(data, train_transform(data["augment"], *normalising),
                                                       val_transform, with_train)
    if len(val_set.classes) != config["model"]["num_classes"]:
        raise UserError(f"model.num_classes={config['model']['num_classes']} but the {data['dataset']} data in "
                         f"{data['root']} has {len(val_set.classes)} classes; set "
                         f"model.num_classes={len(val_set.classes)}")
    return train_set, val_set


def classification_step(device: torch.device):
    """Cross-entropy of one batch of (images, labels), and the batch's top-1 accuracy (%), logged only."""
    def step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
        images, labels = (item.to(device, non_blocking=True) for item in batch)
        logits = model(images)
        accuracy = (logits.detach().argmax(1) == labels).float().mean() * 100
        return {"loss_cls": F.cross_entropy(logits, labels), "train/top1": accuracy}
    return step


def report_evaluation(model: nn.Module, val_set, device: torch.device, config: dict, output_dir: Path,
                      final: bool, suffix: str = "") -> dict:
    """Evaluates; when `final`, the main process saves `eval_results{suffix}.json` and
    `confusion_matrix{suffix}.png`."""
    evaluation = config["eval"]
    workers = config["data"]["workers"] if evaluation["workers"] is None else evaluation["workers"]
    results = evaluate_classifier(model, val_set, device, evaluation["batch_size"], workers)
    if distributed.is_main_process() and final:
        save_results(results, output_dir / f"eval_results{suffix}.json")
        plot_confusion(results, output_dir / f"confusion_matrix{suffix}.png")
    return results


class ClassificationTask(Task):
    """Training a classifier: curves go to `training_curves.png`, the final evaluation to `eval_results.json` and
    `confusion_matrix.png`."""

    curves_file = "training_curves.png"

    def build(self, device: torch.device) -> tuple[nn.Module, object, object]:
        torch.backends.cudnn.benchmark = device.type == "cuda"  # the crops have one size: the fastest kernels pay off
        model = build_classifier(self.config["model"])
        train_set, val_set = build_datasets(self.config, model)
        return model.to(device), train_set, val_set

    def step(self, device: torch.device):
        return classification_step(device)

    def evaluate(self, model: nn.Module, val_set, device: torch.device, output_dir: Path, final: bool) -> dict:
        return report_evaluation(model, val_set, device, self.config, output_dir, final=final)

    def scores(self, results: dict) -> dict[str, float]:
        return {f"val/{key}": results[key] for key in SCORES}

    def score_keys(self) -> tuple[str, ...]:
        return ("train/top1", "val/top1", "val/top5")

    def report(self, results: dict) -> str:
        return format_per_class(results) + "\n" + format_summary(results)

    def result(self, results: dict) -> dict:
        return {key: results[key] for key in SCORES} if results else {}
