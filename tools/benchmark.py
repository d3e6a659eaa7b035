"""Speed benchmarks against the peer library, run side by side on the same weights and input.

Examples:
    python tools/benchmark.py backbone
    python tools/benchmark.py backbone --model resnet101 --size 320 --batch 2 --repeats 20
    python tools/benchmark.py coco-eval
    python tools/benchmark.py coco-eval --images 5000 --repeats 3
    python tools/benchmark.py detector
    python tools/benchmark.py annotation-memory --size-mb 200 --output-dir output/benchmarks
"""
import argparse
from pathlib import Path

import torch

import workbench.benchmarks
from workbench import cli

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mask_rcnn_r18_fpn_shapes_cpu.yaml"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    backbone = commands.add_parser("backbone", help="our features_only ResNet vs torchvision's IntermediateLayerGetter")
    backbone.add_argument("--model", default="resnet50", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                                                   "resnet152"])
    backbone.add_argument("--size", type=int, default=224, help="input height and width")
    backbone.add_argument("--batch", type=int, default=1)
    backbone.add_argument("--repeats", type=int, default=15, help="timed rounds per variant")
    backbone.add_argument("--warmup", type=int, default=2, help="untimed rounds per variant")
    backbone.add_argument("--threads", type=int, default=torch.get_num_threads())
    detector = commands.add_parser("detector", help="the demo's Mask R-CNN training step vs torchvision's")
    detector.add_argument("--config", default=str(DEMO_CONFIG), help="the config of our detector")
    detector.add_argument("--batch", type=int, default=4)
    detector.add_argument("--repeats", type=int, default=10, help="timed training steps per model")
    detector.add_argument("--warmup", type=int, default=2)
    evaluation = commands.add_parser("coco-eval", help="faster-coco-eval vs pycocotools on the same synthetic results")
    evaluation.add_argument("--images", type=int, default=500)
    evaluation.add_argument("--categories", type=int, default=3)
    evaluation.add_argument("--gts-per-image", type=int, default=5, help="mean ground-truth objects per image")
    evaluation.add_argument("--dets-per-image", type=int, default=20)
    evaluation.add_argument("--size", type=int, default=256, help="image height and width")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--repeats", type=int, default=3, help="timed rounds per backend and iou type")
    memory = commands.add_parser("annotation-memory", help="peak memory of loading a large annotation file: ours vs "
                                 "pycocotools, each in a fresh process")
    memory.add_argument("--size-mb", type=float, default=200, help="size of the synthetic COCO instances file in MiB")
    memory.add_argument("--seed", type=int, default=0)
    memory.add_argument("--output-dir", default="output/benchmarks", help="where annotation-memory.json and .md go")
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    return workbench.benchmarks.run_benchmark(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
