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

from workbench import cli
from workbench.cli import benchmark


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_cases(parser.add_subparsers(dest="command", required=True))
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    return benchmark.run_benchmark(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
