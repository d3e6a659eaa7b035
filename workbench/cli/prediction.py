"""The command line of predict.py: the model its flags name, run on the images of `--input`."""
import argparse

from workbench.data.image_files import find_images
from workbench.errors import UserError
from workbench.tasks import prediction
from workbench.tasks.prediction import Predictor, load_predictor, onnx_detector


def predictor_of(args: argparse.Namespace) -> Predictor:
    """The model that `--onnx`, or `--config` and/or `--weights` name."""
    if args.onnx:
        if args.config or args.weights:
            raise UserError("--onnx runs an exported file alone; leave out --config and --weights")
        return onnx_detector(args.onnx)
    if not args.weights:
        raise UserError("give --weights (with --config, unless it is a train_det.py / train_cls.py checkpoint), "
                        "or --onnx")
    return load_predictor(args.weights, args.config, args.overrides, args.device)


def predict(args: argparse.Namespace) -> list[dict]:
    """Runs the model the flags name on the images of `--input`; returns what predictions.json holds."""
    if not 0 <= args.score_thresh <= 1:
        raise UserError(f"--score-thresh must lie in 0..1, got {args.score_thresh}")
    files = find_images(args.input)
    return prediction.predict(predictor_of(args), files, args.output_dir, args.score_thresh, args.batch_size,
                              args.workers)
