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

from workbench import cli
from workbench.cli import training
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.tasks.classification import ClassificationTask


def get_args_parser() -> argparse.ArgumentParser:
    return training.args_parser(__doc__, "configs/classification/")


def main(args: argparse.Namespace) -> dict:
    return training.train(args, CLASSIFICATION_DEFAULTS, ClassificationTask)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
