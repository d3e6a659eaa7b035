"""The command lines of eval_det.py and eval_cls.py: which inputs their flags name, turned into the evaluation."""
import argparse
from pathlib import Path

from workbench.errors import UserError
from workbench.tasks import classification_evaluation, detection_evaluation


def evaluate_detections(args: argparse.Namespace) -> dict:
    """A results file (`--gt`, `--dets`) or a model (`--config`, `--weights`), scored."""
    if args.gt or args.dets:
        if not (args.gt and args.dets):
            raise UserError("--gt and --dets go together")
        return detection_evaluation.evaluate_files(args.gt, args.dets, args.iou_types, args.backend, args.output_dir)
    if not (args.config and args.weights):
        raise UserError("give --config and --weights (evaluate a model) or --gt and --dets (evaluate a results file)")
    return detection_evaluation.evaluate_model(args.config, args.weights, args.overrides, args.iou_types,
                                               args.backend, args.output_dir)


def evaluate_classifier(args: argparse.Namespace) -> dict:
    """A train_cls.py `--checkpoint`, or `--weights` with a `--config`, scored center-crop or 10-crop; the results
    go to `--output-dir` (default: the weights' folder)."""
    if args.checkpoint:
        if args.config or args.weights:
            raise UserError("give --checkpoint alone, or --config with --weights")
        weights = args.checkpoint
        model, config = classification_evaluation.from_checkpoint(weights, args.overrides)
    elif args.config and args.weights:
        weights = args.weights
        model, config = classification_evaluation.from_weights(args.config, weights, args.overrides)
    else:
        raise UserError("give --checkpoint (a train_cls.py checkpoint) or --config with --weights")
    return classification_evaluation.evaluate(model, config, args.output_dir or Path(weights).parent, args.ten_crop)
