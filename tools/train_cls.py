"""Train an image classifier (any registered backbone) on class folders, CIFAR-10/100 or the synthetic shapes set,
on CPU, one GPU or many through torchrun.

Examples:
    python tools/train_cls.py --config configs/classification/resnet18_shapes_cls.yaml
    python tools/train_cls.py --config configs/classification/resnet110_cifar10.yaml data.root=data/cifar
    python tools/train_cls.py --config configs/classification/resnet50_imagenet.yaml --resume
    torchrun --nproc_per_node 8 tools/train_cls.py --config configs/classification/resnet50_imagenet.yaml \
        solver.sync_bn=true

Shares the engine of train_det.py: atomic checkpoints every `train.checkpoint_period` iterations, SIGTERM/Ctrl-C saves
and exits 0, `--resume` continues exactly; metrics go to `metrics.jsonl`, curves to `training_curves.png`, the final
evaluation to `eval_results.json` and `confusion_matrix.png`. The final checkpoint loads as `pretrained=` into
`create_backbone` and as `model.backbone_weights` into any detector config.
"""
import argparse
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import distributed
from cls_data import build_classification_datasets
from cls_evaluation import evaluate_classifier, format_per_class, format_summary, plot_confusion, save_results
from cls_model import build_classifier
from cls_transforms import eval_transform, train_transform
from engine import train_loop
from metrics import plot_curves
from seeded_batches import SeededSamples, training_batches
from solver import SOLVER_DEFAULTS
from stop_signals import ignore_stop_signals
import training

DEFAULTS = {
    "model": {"name": "resnet18", "num_classes": 10, "pretrained": None, "options": {}},
    "data": {
        "dataset": "shapes", "root": "output/shapes_cls", "train_dir": "train", "val_dir": "val", "download": True,
        "holdout": 0, "seed": 0, "shapes": {"num_train": 10000, "num_val": 2000, "size": 32, "seed": 0},
        "batch_size": 128, "workers": 2,
        "augment": {"kind": "pad_crop", "crop": 32, "padding": 4, "scale_range": [256, 480], "hflip": True},
        "mean": None, "std": None, "eval_resize": None, "eval_crop": None,
    },
    "solver": dict(SOLVER_DEFAULTS, lr=0.1, max_iter=64000, steps=[32000, 48000], warmup_iters=0),
    "train": {"output_dir": "output/cls", "seed": 42, "log_period": 20, "checkpoint_period": 5000, "eval_period": 0,
              "device": "auto"},
    "eval": {"batch_size": 256, "workers": None},
}


def get_args_parser() -> argparse.ArgumentParser:
    return training.args_parser(__doc__, "configs/classification/")


def resolve_config(args: argparse.Namespace) -> dict:
    """Defaults, then the file, then overrides, then --output-dir."""
    return training.resolve_config(DEFAULTS, args)


def normalisation(data: dict, model: nn.Module) -> tuple[tuple, tuple]:
    """data.mean / data.std, or the model's pretrained_cfg when they are null (pixels in 0-1, RGB)."""
    cfg = model.pretrained_cfg
    if (data["mean"] is None or data["std"] is None) and (cfg["pixel_range"] != 1.0 or cfg["channel_order"] != "RGB"):
        raise ValueError(f"{cfg['architecture']}.{cfg['tag']} expects {cfg['channel_order']} pixels in 0-"
                         f"{cfg['pixel_range']:g}; the classification tools feed RGB in 0-1, so set data.mean and "
                         f"data.std explicitly")
    return tuple(data["mean"] or cfg["mean"]), tuple(data["std"] or cfg["std"])


def eval_sizes(data: dict, model: nn.Module) -> tuple[int | None, int | None]:
    """(resize, crop) of evaluation: data.eval_resize / data.eval_crop (null: the image as it is), or, when
    eval_crop is "pretrained", the pretrained config's input size and crop_pct (e.g. 256 and 224)."""
    if data["eval_crop"] == "pretrained":
        cfg = model.pretrained_cfg
        crop = cfg["input_size"][-1]
        return round(crop / cfg["crop_pct"]), crop
    return data["eval_resize"], data["eval_crop"]


def build_datasets(config: dict, model: nn.Module, val_transform=None, with_train: bool = True):
    """The training and validation sets of the config (the training set None unless `with_train`);
    `val_transform` replaces the center-crop evaluation."""
    data = config["data"]
    mean, std = normalisation(data, model)
    if val_transform is None:
        val_transform = eval_transform(*eval_sizes(data, model), mean, std)
    train_set, val_set = build_classification_datasets(data, train_transform(data["augment"], mean, std),
                                                       val_transform, with_train)
    if len(val_set.classes) != config["model"]["num_classes"]:
        raise ValueError(f"model.num_classes={config['model']['num_classes']} but the {data['dataset']} data in "
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


def train(config: dict, resume: bool = False) -> dict:
    """Trains and evaluates as `config` says; returns the final evaluation results."""
    device = distributed.select_device(config["train"]["device"])
    torch.manual_seed(config["train"]["seed"] + distributed.get_rank())
    torch.backends.cudnn.benchmark = device.type == "cuda"  # the crops have one size: the fastest kernels pay off
    output_dir = Path(config["train"]["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    model = build_classifier(config["model"])
    train_set, val_set = build_datasets(config, model)
    model = model.to(device)
    solver = config["solver"]
    state = training.prepare_state(model, config, device, output_dir, resume)
    model = state.model

    data = config["data"]
    batch_indices = training_batches(len(train_set), data["batch_size"], config["train"]["seed"],
                                     rank=distributed.get_rank(), world_size=distributed.get_world_size(),
                                     start_batch=state.iteration * solver["accumulate"])
    loader = DataLoader(SeededSamples(train_set), batch_sampler=batch_indices, num_workers=data["workers"],
                        generator=torch.Generator(), pin_memory=device.type == "cuda",
                        worker_init_fn=ignore_stop_signals)
    final: dict = {}

    def evaluate(iteration: int) -> dict[str, float]:
        final.clear()
        final.update(report_evaluation(training.unwrapped(model), val_set, device,
                                       config, output_dir, final=iteration == solver["max_iter"]))
        return {f"val/{key}": final[key] for key in ("top1", "top5", "loss") if key in final}

    outcome = train_loop(state, loader, classification_step(device), training.loop_settings(config),
                         str(output_dir), config, evaluate)
    if distributed.is_main_process() and (output_dir / "metrics.jsonl").is_file():
        plot_curves(output_dir / "metrics.jsonl", output_dir / "training_curves.png",
                    score_keys=("train/top1", "val/top1", "val/top5"))
    if distributed.is_main_process():
        if outcome != "finished":
            print(training.stop_message(outcome, state.iteration, output_dir))
        elif final:
            print(format_per_class(final))
            print(format_summary(final))
    return {key: final[key] for key in ("top1", "top5", "loss")} if final else {}


def main(args: argparse.Namespace) -> dict:
    return training.run(args, DEFAULTS, train)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(get_args_parser().parse_args())
