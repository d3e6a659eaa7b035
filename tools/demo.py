"""The embedded default job: generate shapes, train Mask R-CNN R18-FPN on the CPU, evaluate, draw.

Runs offline in minutes on two cores and says where the pictures are. `make demo` runs it.

Examples:
    python tools/demo.py
    python tools/demo.py --output-dir output/demo solver.max_iter=100
"""
import argparse
from pathlib import Path

from workbench import cli
from workbench.tasks import demo

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mask_rcnn_r18_fpn_shapes_cpu.yaml"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")
    return parser


def main(args: argparse.Namespace):
    return demo.run_demo(args.config, args.output_dir, args.overrides)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
