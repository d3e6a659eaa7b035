"""Speed benchmarks against the peer library, run side by side on the same weights and input.

Every case prints the machine line first, then a table of times and ratios peer/ours, and writes <case>.json and
<case>.md to --output-dir (default output/benchmarks).

Examples:
    python tools/benchmark.py backbone
    python tools/benchmark.py backbone --model resnet50 --mode eval --batch 1 --repeats 40
    python tools/benchmark.py backbone --device cuda --batch 8 32
    python tools/benchmark.py backbone --model resnet50 --batch 8 --compile
    python tools/benchmark.py coco-eval
    python tools/benchmark.py coco-eval --images 5000 --repeats 3
    python tools/benchmark.py detector
    python tools/benchmark.py annotation-memory --size-mb 200 --output-dir output/benchmarks
"""
import argparse
from pathlib import Path

import workbench.benchmarks
from workbench import cli

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mask_rcnn_r18_fpn_shapes_cpu.yaml"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    backbone = commands.add_parser("backbone", help="our features_only ResNet vs torchvision's IntermediateLayerGetter "
                                    "and timm's features_only, eval and training")
    workbench.benchmarks.backbone.add_arguments(backbone)
    detector = commands.add_parser("detector", help="the demo's Mask R-CNN training step vs torchvision's")
    detector.add_argument("--config", default=str(DEMO_CONFIG), help="the config of our detector")
    detector.add_argument("--batch", type=int, default=4)
    detector.add_argument("--repeats", type=int, default=10, help="timed training steps per model")
    detector.add_argument("--warmup", type=int, default=2)
    detector.add_argument("--output-dir", default="output/benchmarks", help="where detector.json and .md go")
    evaluation = commands.add_parser("coco-eval", help="COCO evaluation, ours vs pycocotools, bbox and segm")
    workbench.benchmarks.coco_eval.add_arguments(evaluation)
    inference = commands.add_parser("detector-inference", help="Faster / Mask R-CNN R50-FPN inference vs torchvision's "
                                    "models on the same checkpoint")
    workbench.benchmarks.detector_inference.add_arguments(inference)
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
