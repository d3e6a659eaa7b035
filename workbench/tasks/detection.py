"""Detection as a config describes it: COCO-format data (or the synthetic shapes), a Faster / Mask R-CNN (FPN or C4),
its training step, and its evaluation with the 12 COCO numbers and pictures of predictions."""
import json
from pathlib import Path

import torch
from torch import nn

import heads
from backbones import read_checkpoint
from backbones.weights.formats import strip_shared_prefixes
from heads.weights.catalog import named_weights
from heads.weights.state_names import CLASS_SCORES
from workbench.config.checks import check_model_options
from workbench.data.batching import aspect_ratio_groups
from workbench.data.coco import CocoDetection, collate_fn
from workbench.data.dataset_summary import data_summary
from workbench.data.detection_samples import DetectionSamples
from workbench.data.detection_transforms import build_transforms
from workbench.data.label_names import COCO_CATEGORY_NAMES
from workbench.data.shapes import make_shapes
from workbench.engine import distributed
from workbench.engine.trainer import Task
from workbench.errors import UserError
from workbench.evaluation.coco import format_results
from workbench.evaluation.detector import evaluate_detector
from workbench.evaluation.pictures import save_prediction_grid
from workbench.evaluation.results import save_results

SHAPES_SPLITS = {"train_images": "train", "train_annotations": "annotations/instances_train.json",
                 "val_images": "val", "val_annotations": "annotations/instances_val.json"}


def split_paths(data: dict) -> dict[str, Path]:
    """Image folders and annotation files of both splits, as the config section `data` names them."""
    names = dict(data, **SHAPES_SPLITS) if data["dataset"] == "shapes" else data
    return {key: Path(data["root"]) / names[key] for key in SHAPES_SPLITS}


def data_paths(data: dict) -> dict[str, Path]:
    """`split_paths`; generates the shapes dataset when it is asked for and missing (on the main process)."""
    root = Path(data["root"])
    paths = split_paths(data)
    if data["dataset"] == "shapes" and not paths["val_annotations"].is_file():
        if distributed.is_main_process():
            shapes = data["shapes"]
            make_shapes(root, shapes["num_train"], shapes["num_val"], shapes["seed"], size=shapes["size"],
                        max_objects=shapes["max_objects"])
        distributed.barrier()
    elif data["dataset"] not in ("coco", "shapes"):
        raise UserError(f"data.dataset={data['dataset']!r} is not supported; choose 'coco' or 'shapes'")
    return paths


def build_datasets(config: dict) -> tuple[CocoDetection, CocoDetection, dict[str, Path]]:
    """The training and validation datasets of the config, and their paths."""
    data = config["data"]
    paths = data_paths(data)
    common = dict(with_masks=config["model"]["kind"] == "mask_rcnn", unreadable_images=data["unreadable_images"],
                  labels_are_category_ids=config["model"]["labels_are_category_ids"])
    train_set = CocoDetection(paths["train_images"], paths["train_annotations"], train=True,
                              skip_empty=data["skip_empty"], transforms=build_transforms(True, **data["augment"]),
                              **common)
    val_set = CocoDetection(paths["val_images"], paths["val_annotations"], train=False,
                            transforms=build_transforms(False), **common)
    return train_set, val_set, paths


def check_num_classes(model: dict, dataset: CocoDetection) -> None:
    """Raises a UserError naming the annotation file when the config's `model.num_classes` does not fit its labels:
    one output per category and the background, or with `labels_are_category_ids` one per id up to the largest."""
    num_classes, needed = model["num_classes"], len(dataset.class_names)
    if model["labels_are_category_ids"]:
        if num_classes < needed:
            raise UserError(f"model.num_classes={num_classes} but {dataset.ann_file} has category ids up to "
                            f"{needed - 1}, and model.labels_are_category_ids=true makes them the labels; set "
                            f"model.num_classes={needed} or more")
        return
    if num_classes != needed:
        hint = ""
        if num_classes == max(dataset.cat_ids, default=0) + 1:
            hint = ("; or, for a model whose outputs are indexed by category id (torchvision's COCO checkpoints), "
                    "model.labels_are_category_ids=true")
        raise UserError(f"model.num_classes={num_classes} but {dataset.ann_file} has {needed - 1} categories; set "
                        f"model.num_classes={needed} (background included){hint}")


def check_checkpoint_classes(model: dict) -> None:
    """Before evaluating or predicting with the whole-detector checkpoint `model.weights`: raises a UserError when its
    number of class outputs is not `model.num_classes`, since loading would then drop its trained predictor (as
    fine-tuning on other classes does). The message says what to set, for torchvision's 91-output COCO detectors
    too."""
    scores = strip_shared_prefixes(read_checkpoint(model["weights"])).get(CLASS_SCORES)
    if scores is None or len(scores) == model["num_classes"]:
        return
    hint = f"set model.num_classes={len(scores)}"
    if len(scores) == len(COCO_CATEGORY_NAMES) and not model["labels_are_category_ids"]:
        hint += (" and model.labels_are_category_ids=true (torchvision's COCO detectors have an output per COCO "
                 "category id)")
    raise UserError(f"{model['weights']} has {len(scores)} class outputs ({CLASS_SCORES}) but model.num_classes="
                    f"{model['num_classes']}, so its trained predictor would be dropped; {hint}")


def use_detector_checkpoint(config: dict, weights: str) -> None:
    """Points `config` at the whole-detector checkpoint `weights` (the path as it is, never parsed as YAML; no
    backbone weights on top) after checking its class outputs (`check_checkpoint_classes`); or at the named weights
    `weights` (`apply_named_weights`). Unknown `model.options` are refused first (`check_model_options`)."""
    config["model"].update(weights=weights, backbone_weights=None)
    check_model_options(config["model"])
    if not apply_named_weights(config["model"]):
        check_checkpoint_classes(config["model"])


def apply_named_weights(model: dict) -> bool:
    """When `model.weights` names registered detector weights (or is a file under their publisher's name), sets
    the kind, backbone tag, neck, number of classes and label mapping they fit; returns whether it did."""
    spec = named_weights(model["weights"])
    if spec is None:
        return False
    model.update({key: spec[key] for key in ("kind", "backbone", "neck", "num_classes", "labels_are_category_ids")},
                 backbone_weights=None)
    return True


def build_model(config: dict, device: torch.device) -> nn.Module:
    """The detector of `config["model"]`, on `device`; null options keep the heads' defaults."""
    spec = config["model"]
    options = {key: value for key, value in spec["options"].items() if value is not None}
    model = heads.build_detector(spec["kind"], backbone=spec["backbone"], num_classes=spec["num_classes"],
                                 neck=spec["neck"], backbone_weights=spec["backbone_weights"],
                                 weights=spec["weights"], weights_file=spec["weights_file"], **options)
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


def model_line(spec: dict, model: nn.Module) -> str:
    """The detector in one line: kind, backbone and its starting weights, neck, classes."""
    start = {None: "from scratch", True: "its tag's ImageNet weights"}.get(spec["backbone_weights"],
                                                                         spec["backbone_weights"])
    start = f"the detector weights {spec['weights']}" if spec["weights"] else start
    return (f"model: {spec['kind']} on {spec['backbone']} ({start}) with neck {spec['neck']}, "
            f"{class_outputs(model)} classes with the background, {parameter_count(model)}")


def class_outputs(model: nn.Module) -> int:
    """The detector's class outputs, background included (ours say it; torchvision's class predictor does)."""
    return getattr(model, "num_classes", None) or model.roi_heads.box_predictor.cls_score.out_features


def parameter_count(model: nn.Module) -> str:
    """"N.NM parameters (N.NM trainable)"."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{total / 1e6:.1f}M parameters ({trainable / 1e6:.1f}M trainable)"


def iou_types_of(config: dict) -> tuple[str, ...]:
    """bbox, plus segm for Mask R-CNN, unless eval.iou_types says otherwise."""
    if config["eval"]["iou_types"]:
        return tuple(config["eval"]["iou_types"])
    return ("bbox", "segm") if config["model"]["kind"] == "mask_rcnn" else ("bbox",)


def report_evaluation(model: nn.Module, val_set: CocoDetection | DetectionSamples, annotations: Path | None,
                      device: torch.device, config: dict, output_dir: Path, draw: bool) -> dict:
    """Evaluates, saves results (and pictures when `draw`) on the main process; returns the results there.
    `annotations` None evaluates against the dataset's own targets, written to `ground_truth.json`."""
    evaluation = config["eval"]
    workers = config["data"]["workers"] if evaluation["workers"] is None else evaluation["workers"]
    results, detections, kept = evaluate_detector(
        model, val_set, annotations, device, iou_types=iou_types_of(config), backend=evaluation["backend"],
        batch_size=evaluation["batch_size"], workers=workers, keep=evaluation["draw_images"] if draw else 0,
        ground_truth_file=output_dir / "ground_truth.json")
    if distributed.is_main_process():
        save_results(results, output_dir / "eval_results.json")
        (output_dir / "detections.json").write_text(json.dumps(detections))
        if kept:
            images, predictions = zip(*kept)
            save_prediction_grid(list(images), list(predictions), val_set.class_names, output_dir / "predictions.png",
                                 score_threshold=evaluation["score_threshold"])
    return results


class DetectionTask(Task):
    """Training a detector: the loss curve goes to `loss_curve.png`, the final pictures to `predictions.png`."""

    curves_file = "loss_curve.png"
    collate_fn = staticmethod(collate_fn)

    def build(self, device: torch.device) -> tuple[nn.Module, CocoDetection, CocoDetection]:
        apply_named_weights(self.config["model"])
        train_set, val_set, self.paths = build_datasets(self.config)
        check_num_classes(self.config["model"], train_set)
        return self.make_model(device), train_set, val_set

    def make_model(self, device: torch.device) -> nn.Module:
        """The detector to train: the config's."""
        return build_model(self.config, device)

    def group_ids(self, train_set: CocoDetection) -> list[int] | None:
        return aspect_ratio_groups(train_set) if self.config["data"]["group_by_aspect_ratio"] else None

    def step(self, device: torch.device):
        return detection_step(device)

    def evaluate(self, model: nn.Module, val_set: CocoDetection, device: torch.device, output_dir: Path,
                 final: bool) -> dict:
        return report_evaluation(model, val_set, self.paths["val_annotations"], device, self.config, output_dir,
                                 draw=final)

    def scores(self, results: dict) -> dict[str, float]:
        return {f"{iou}/{name}": value for iou, r in results.items() for name, value in r["stats"].items()}

    def score_keys(self) -> tuple[str, ...]:
        return tuple(f"{iou}/AP" for iou in iou_types_of(self.config))

    def summary(self, model: nn.Module, train_set: CocoDetection | DetectionSamples,
                val_set: CocoDetection | DetectionSamples) -> str:
        return f"{data_summary(train_set, val_set)}\n{model_line(self.config['model'], model)}"

    def report(self, results: dict) -> str:
        return format_results(results)
