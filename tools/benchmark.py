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
    python tools/benchmark.py roi-align --cases demo
    python tools/benchmark.py detector-train
    python tools/benchmark.py detector-train --device cuda --models r50-fpn --images 8 --height 800 --width 1088
    python tools/benchmark.py data
    python tools/benchmark.py data --sizes 640 --workers 2
    python tools/benchmark.py demo
    python tools/benchmark.py demo --models ours --eval-period 60 solver.max_iter=600
    python tools/benchmark.py annotation-memory --size-mb 200 --output-dir output/benchmarks
"""
import argparse

import workbench.benchmarks
from workbench import cli


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    backbone = commands.add_parser("backbone", help="our features_only ResNet vs torchvision's IntermediateLayerGetter "
                                    "and timm's features_only, eval and training")
    workbench.benchmarks.backbone.add_arguments(backbone)
    training = commands.add_parser("detector-train", help="Mask R-CNN R50-FPN training step vs torchvision's on the "
                                   "same weights, and the demo's R18-FPN")
    workbench.benchmarks.detector_train.add_arguments(training)
    data = commands.add_parser("data", help="our detection training data pipeline vs torchvision.transforms.v2 "
                               "over the same shapes files")
    workbench.benchmarks.data_pipeline.add_arguments(data)
    evaluation = commands.add_parser("coco-eval", help="COCO evaluation, ours vs pycocotools, bbox and segm")
    workbench.benchmarks.coco_eval.add_arguments(evaluation)
    inference = commands.add_parser("detector-inference", help="Faster / Mask R-CNN R50-FPN inference vs torchvision's "
                                    "models on the same checkpoint")
    workbench.benchmarks.detector_inference.add_arguments(inference)
    roi_align = commands.add_parser("roi-align", help="multi-scale RoIAlign on CPU, forward and backward, vs "
                                    "torchvision's at the demo's and R50-FPN Mask R-CNN's shapes")
    workbench.benchmarks.roi_align.add_arguments(roi_align)
    demo = commands.add_parser("demo", help="time to the demo's AP: our demo detector vs torchvision's Mask R-CNN "
                               "R18-FPN, trained alike")
    workbench.benchmarks.demo_time.add_arguments(demo)
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
