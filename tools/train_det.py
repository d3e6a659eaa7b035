"""Train a Faster / Mask R-CNN (FPN or C4) on COCO-format data, on CPU, one GPU or many through torchrun.

Examples:
    python tools/train_det.py --config configs/mask_rcnn_r18_fpn_shapes_cpu.yaml
    python tools/train_det.py --config configs/mask_rcnn_r50_fpn_1x_coco.yaml --output-dir output/r50 solver.lr=0.01
    python tools/train_det.py --config configs/mask_rcnn_r50_fpn_1x_coco.yaml --output-dir output/r50 --resume
    python tools/train_det.py --config configs/faster_rcnn_r50_c4_1x_coco.yaml --print-config
    torchrun --nproc_per_node 8 tools/train_det.py --config configs/mask_rcnn_r50_fpn_3x_coco.yaml

Checkpoints are written atomically every `train.checkpoint_period` iterations; SIGTERM or Ctrl-C saves one and exits 0;
`--resume` continues exactly from the last one in the output folder. Metrics go to `metrics.jsonl` (and TensorBoard
when installed), the loss curve to `loss_curve.png`, pictures of predictions to `predictions.png`.
"""
import argparse
import json
import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

import distributed
import heads
from coco_data import CocoDetection, collate_fn
from coco_eval import format_results, save_results
from det_inference import evaluate_detector
from det_transforms import build_transforms
from engine import train_loop
from make_shapes import make_shapes
from metrics import plot_curves
from samplers import aspect_ratio_groups
from seeded_batches import SeededSamples, training_batches
from solver import SOLVER_DEFAULTS
from stop_signals import ignore_stop_signals
import training
from visualize import save_prediction_grid

DEFAULTS = {
    "model": {
        "kind": "mask_rcnn", "backbone": "resnet50", "neck": "fpn", "num_classes": 81, "backbone_weights": None,
        "weights": None, "norm": None, "frozen_stages": None, "options": {},
    },
    "data": {
        "dataset": "coco", "root": "data/coco", "train_images": "train2017",
        "train_annotations": "annotations/instances_train2017.json", "val_images": "val2017",
        "val_annotations": "annotations/instances_val2017.json",
        "shapes": {"num_train": 1000, "num_val": 200, "seed": 0, "size": 128, "max_objects": 4},
        "skip_empty": True, "batch_size": 2, "workers": 2, "group_by_aspect_ratio": True,
        "augment": {"hflip_prob": 0.5, "scales": None, "max_size": None, "lsj": None, "photometric": False},
    },
    "solver": dict(SOLVER_DEFAULTS),
    "train": {
        "output_dir": "output/det", "seed": 42, "log_period": 20, "checkpoint_period": 5000, "eval_period": 0,
        "device": "auto",
    },
    "eval": {"iou_types": None, "backend": "pycocotools", "batch_size": 2, "workers": None, "draw_images": 8,
             "score_threshold": 0.5},
}
SHAPES_SPLITS = {"train_images": "train", "train_annotations": "annotations/instances_train.json",
                 "val_images": "val", "val_annotations": "annotations/instances_val.json"}


def get_args_parser() -> argparse.ArgumentParser:
    return training.args_parser(__doc__, "configs/")


def resolve_config(args: argparse.Namespace) -> dict:
    """Defaults, then the file, then overrides, then --output-dir."""
    return training.resolve_config(DEFAULTS, args)


def data_paths(data: dict) -> dict[str, Path]:
    """Image folders and annotation files of both splits; generates the shapes dataset when it is asked for and
    missing (on the main process)."""
    root = Path(data["root"])
    names = dict(data, **SHAPES_SPLITS) if data["dataset"] == "shapes" else data
    paths = {key: root / names[key] for key in SHAPES_SPLITS}
    if data["dataset"] == "shapes" and not paths["val_annotations"].is_file():
        if distributed.is_main_process():
            shapes = data["shapes"]
            make_shapes(root, shapes["num_train"], shapes["num_val"], shapes["seed"], size=shapes["size"],
                        max_objects=shapes["max_objects"])
        distributed.barrier()
    elif data["dataset"] not in ("coco", "shapes"):
        raise ValueError(f"data.dataset={data['dataset']!r} is not supported; choose 'coco' or 'shapes'")
    return paths


def build_datasets(config: dict) -> tuple[CocoDetection, CocoDetection, dict[str, Path]]:
    """The training and validation datasets of the config."""
    data = config["data"]
    paths = data_paths(data)
    with_masks = config["model"]["kind"] == "mask_rcnn"
    train_set = CocoDetection(paths["train_images"], paths["train_annotations"], with_masks=with_masks, train=True,
                              skip_empty=data["skip_empty"], transforms=build_transforms(True, **data["augment"]))
    val_set = CocoDetection(paths["val_images"], paths["val_annotations"], with_masks=with_masks, train=False,
                            transforms=build_transforms(False))
    return train_set, val_set, paths


def build_model(config: dict, device: torch.device) -> nn.Module:
    """The detector of `config["model"]`, on `device`."""
    spec = config["model"]
    options = {key: value for key, value in spec["options"].items() if value is not None}  # null: the default
    for key in ("norm", "frozen_stages"):
        if spec[key] is not None:
            options[key] = spec[key]
    model = heads.build_detector(spec["kind"], backbone=spec["backbone"], num_classes=spec["num_classes"],
                                 neck=spec["neck"], backbone_weights=spec["backbone_weights"],
                                 weights=spec["weights"], **options)
    return model.to(device)


def detection_step(device: torch.device):
    """The loss of one batch of (images, targets)."""
    def step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
        images, targets = batch
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
                   for t in targets]
        return model(images, targets)
    return step


def iou_types_of(config: dict) -> tuple[str, ...]:
    """bbox, plus segm for Mask R-CNN, unless eval.iou_types says otherwise."""
    if config["eval"]["iou_types"]:
        return tuple(config["eval"]["iou_types"])
    return ("bbox", "segm") if config["model"]["kind"] == "mask_rcnn" else ("bbox",)


def report_evaluation(model: nn.Module, val_set: CocoDetection, annotations: Path, device: torch.device,
                      config: dict, output_dir: Path, draw: bool) -> dict:
    """Evaluates, saves results (and pictures when `draw`) on the main process; returns the results."""
    evaluation = config["eval"]
    workers = config["data"]["workers"] if evaluation["workers"] is None else evaluation["workers"]
    results, detections, kept = evaluate_detector(
        model, val_set, str(annotations), device, iou_types=iou_types_of(config), backend=evaluation["backend"],
        batch_size=evaluation["batch_size"], workers=workers, keep=evaluation["draw_images"] if draw else 0)
    if distributed.is_main_process():
        save_results(results, output_dir / "eval_results.json")
        (output_dir / "detections.json").write_text(json.dumps(detections))
        if kept:
            images, predictions = zip(*kept)
            save_prediction_grid(list(images), list(predictions), val_set.class_names, output_dir / "predictions.png",
                                 score_threshold=evaluation["score_threshold"])
    return results


def flat_scores(results: dict) -> dict[str, float]:
    """`bbox/AP`-style scalars for the metrics log."""
    return {f"{iou}/{name}": value for iou, r in results.items() for name, value in r["stats"].items()}


def train(config: dict, resume: bool) -> dict:
    """Trains and evaluates as `config` says; returns the final evaluation results (on the main process)."""
    device = distributed.select_device(config["train"]["device"])
    torch.manual_seed(config["train"]["seed"] + distributed.get_rank())
    output_dir = Path(config["train"]["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set, paths = build_datasets(config)
    if config["model"]["num_classes"] != len(train_set.class_names):
        raise ValueError(f"model.num_classes={config['model']['num_classes']} but {paths['train_annotations']} has "
                         f"{len(train_set.class_names) - 1} categories; set model.num_classes="
                         f"{len(train_set.class_names)} (background included)")
    model = build_model(config, device)
    solver = config["solver"]
    state = training.prepare_state(model, config, device, output_dir, resume)
    model = state.model

    data = config["data"]
    groups = aspect_ratio_groups(train_set) if data["group_by_aspect_ratio"] else None
    batch_indices = training_batches(len(train_set), data["batch_size"], config["train"]["seed"], group_ids=groups,
                                     rank=distributed.get_rank(), world_size=distributed.get_world_size(),
                                     start_batch=state.iteration * solver["accumulate"])
    loader = DataLoader(SeededSamples(train_set), batch_sampler=batch_indices, num_workers=data["workers"],
                        collate_fn=collate_fn, generator=torch.Generator(), pin_memory=device.type == "cuda",
                        worker_init_fn=ignore_stop_signals)
    final: dict = {}

    def evaluate(iteration: int) -> dict[str, float]:
        final.clear()
        final.update(report_evaluation(training.unwrapped(model), val_set,
                                       paths["val_annotations"], device, config, output_dir,
                                       draw=iteration == solver["max_iter"]))
        return flat_scores(final)

    outcome = train_loop(state, loader, detection_step(device), training.loop_settings(config), str(output_dir),
                         config, evaluate)
    if distributed.is_main_process() and (output_dir / "metrics.jsonl").is_file():
        plot_curves(output_dir / "metrics.jsonl", output_dir / "loss_curve.png",
                    score_keys=tuple(f"{t}/AP" for t in iou_types_of(config)))
    if distributed.is_main_process():
        if outcome != "finished":
            print(training.stop_message(outcome, state.iteration, output_dir))
        elif final:
            print(format_results(final))
    return final


def main(args: argparse.Namespace) -> dict:
    return training.run(args, DEFAULTS, train)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(get_args_parser().parse_args())
