"""Generate the synthetic "shapes" detection dataset (circles, squares, triangles) in COCO instances format.

Byte-identical for the same arguments; how the images are drawn: `workbench.data.shapes`.

Layout:
    OUT/train/000000.png ...           OUT/annotations/instances_train.json
    OUT/val/000000.png ...             OUT/annotations/instances_val.json

Examples:
    python tools/make_shapes.py --output-dir output/shapes --num-train 1000 --num-val 200 --seed 0
    python tools/make_shapes.py --output-dir /tmp/shapes --num-train 64 --num-val 16 --seed 1 --size 96 --max-objects 3
"""
import argparse

from workbench import cli
from workbench.cli import shapes


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", "--out", required=True, help="dataset root to write")
    parser.add_argument("--num-train", type=int, default=1000, help="number of training images")
    parser.add_argument("--num-val", type=int, default=200, help="number of validation images")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same bytes)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--min-objects", type=int, default=1, help="fewest objects per image")
    parser.add_argument("--max-objects", type=int, default=4, help="most objects per image")
    return parser


def main(args: argparse.Namespace):
    return shapes.make_shapes(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
