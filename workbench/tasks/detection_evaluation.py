"""Evaluate detections with the 12 COCO numbers (bbox and segm) and per-category AP.

Two inputs:
- a model: `--config` and `--weights` (our checkpoint, or torchvision's fasterrcnn/maskrcnn_resnet50_fpn file);
- a COCO results file: `--gt` (the original annotation JSON) and `--dets`.

The command line is `tools/eval_det.py`.
"""
import argparse
from pathlib import Path

from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.engine import distributed
from workbench.errors import UserError
from workbench.evaluation.coco import evaluate_coco, format_results
from workbench.evaluation.results import save_results
from workbench.tasks.detection import (
    build_datasets,
    build_model,
    check_num_classes,
    report_evaluation,
    use_detector_checkpoint,
)


def evaluate_files(args: argparse.Namespace) -> dict:
    """Scores a COCO results file against the annotation file."""
    results = evaluate_coco(args.gt, args.dets, iou_types=tuple(args.iou_types or ("bbox",)),
                            backend=args.backend or "pycocotools")
    print(format_results(results))
    if args.output_dir:
        save_results(results, Path(args.output_dir) / "eval_results.json")
    return results


def evaluate_model(args: argparse.Namespace) -> dict:
    """Runs the model of `--config` with `--weights` on the config's validation split and scores it."""
    config = load_config(DETECTION_DEFAULTS, args.config, args.overrides)
    use_detector_checkpoint(config, args.weights)
    if args.backend:
        config["eval"]["backend"] = args.backend
    if args.iou_types:
        config["eval"]["iou_types"] = list(args.iou_types)
    device = distributed.select_device(config["train"]["device"])
    _, val_set, paths = build_datasets(config)
    check_num_classes(config["model"], val_set)
    model = build_model(config, device)
    weights = Path(args.weights)
    output_dir = Path(args.output_dir or (weights.parent if weights.is_file() else Path("output") / weights.name))
    output_dir.mkdir(parents=True, exist_ok=True)
    results = report_evaluation(model, val_set, paths["val_annotations"], device, config, output_dir, draw=True)
    if distributed.is_main_process():
        print(format_results(results))
        print(f"results: {output_dir / 'eval_results.json'}; pictures: {output_dir / 'predictions.png'}")
    return results


def evaluate(args: argparse.Namespace) -> dict:
    """A results file (`--gt`, `--dets`) or a model (`--config`, `--weights`), scored."""
    if args.gt or args.dets:
        if not (args.gt and args.dets):
            raise UserError("--gt and --dets go together")
        return evaluate_files(args)
    if not (args.config and args.weights):
        raise UserError("give --config and --weights (evaluate a model) or --gt and --dets (evaluate a results file)")
    try:
        return evaluate_model(args)
    finally:
        distributed.cleanup()
