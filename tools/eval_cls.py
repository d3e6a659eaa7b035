"""Evaluate a classifier: top-1/top-5, per-class accuracy and a confusion matrix, center-crop or 10-crop.

Two inputs:
- `--checkpoint`: a train_cls.py checkpoint (its config says the model and the data);
- `--config` and `--weights`: any weights `backbones.load_weights` reads (torchvision, timm, ours...) for the model
  and data of a config.

Examples:
    python tools/eval_cls.py --checkpoint output/shapes_cls/model_final.pth
    python tools/eval_cls.py --checkpoint output/r56/model_final.pth data.holdout=0      # the CIFAR test set
    python tools/eval_cls.py --config configs/classification/resnet50_imagenet.yaml --weights resnet50-0676ba61.pth \
        --ten-crop
    torchrun --nproc_per_node 8 tools/eval_cls.py --config configs/classification/resnet50_imagenet.yaml \
        --weights r50.pth

`--ten-crop` is the paper's Table 3 protocol: the four corners and the center of the resized image, and their
horizontal flips, scored by the mean of the ten softmax outputs.
"""
import argparse

from workbench import cli
from workbench.cli import evaluation


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a train_cls.py checkpoint (model_final.pth)")
    parser.add_argument("--config", help="YAML config of the model and its data (with --weights)")
    parser.add_argument("--weights", help="weights of any supported format (with --config)")
    parser.add_argument("--ten-crop", action="store_true", help="10-crop testing (corners, center and their flips)")
    parser.add_argument("--output-dir", help="where results and the confusion matrix go (default: the weights' "
                                             "folder)")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. data.root=/data/imagenet")
    return parser


def main(args: argparse.Namespace):
    return evaluation.evaluate_classifier(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
