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

from workbench import cli
from workbench.cli import training
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.tasks.detection import DetectionTask


def get_args_parser() -> argparse.ArgumentParser:
    return training.args_parser(__doc__, "configs/")


def main(args: argparse.Namespace) -> dict:
    return training.train(args, DETECTION_DEFAULTS, DetectionTask)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
