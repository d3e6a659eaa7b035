"""Evaluate detections with the 12 COCO numbers (bbox and segm) and per-category AP.

Two inputs:
- a model: `--config` and `--weights` (our checkpoint, torchvision's fasterrcnn/maskrcnn_resnet50_fpn file, or a name of
  `heads.list_detector_weights()`, e.g. maskrcnn_resnet50_fpn.tv_coco_v1);
- a COCO results file: `--gt` (the original annotation JSON) and `--dets`.

Examples:
    python tools/eval_det.py --config configs/mask_rcnn_r18_fpn_shapes_cpu.yaml --weights output/shapes/model_final.pth
    python tools/eval_det.py --gt instances_val2017.json --dets detections.json --iou-types bbox segm
    python tools/eval_det.py --gt instances_val2017.json --dets detections.json --backend faster
    torchrun --nproc_per_node 2 tools/eval_det.py --config configs/mask_rcnn_r50_fpn_1x_coco.yaml --weights m.pth
"""
import argparse

from workbench import cli
from workbench.cli import evaluation


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config of the model and its validation data")
    parser.add_argument("--weights", help="whole-detector checkpoint or weights name to evaluate (with --config)")
    parser.add_argument("--output-dir", help="where results and pictures go (default: the weights' folder, or "
                                             "output/NAME)")
    parser.add_argument("--gt", help="COCO annotation JSON (with --dets)")
    parser.add_argument("--dets", help="COCO results JSON (with --gt)")
    parser.add_argument("--iou-types", nargs="+", choices=["bbox", "segm"], help="default: what the model predicts")
    parser.add_argument("--backend", choices=["pycocotools", "faster"], help="default: eval.backend, or pycocotools")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")
    return parser


def main(args: argparse.Namespace):
    return evaluation.evaluate_detections(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
