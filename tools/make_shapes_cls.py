"""Generate the synthetic "shapes" classification dataset: one shape per image, ten classes, as class folders.

Byte-identical for the same arguments; how the images are drawn: `workbench.data.shapes_classification`.

Layout (ImageNet-style class folders, read by workbench.data.classification.ImageFolder):
    OUT/train/circle/000000.png ...   OUT/val/circle/000000.png ...   OUT/classes.txt

Examples:
    python tools/make_shapes_cls.py --output-dir output/shapes_cls --num-train 10000 --num-val 2000 --size 32
    python tools/make_shapes_cls.py --output-dir output/shapes_cls32_easy --background plain --extent 0.6 0.9
"""
import argparse

from workbench import cli
from workbench.cli import shapes
from workbench.data import shapes_classification


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", "--out", required=True, help="dataset root to write")
    parser.add_argument("--num-train", type=int, default=10000, help="number of training images")
    parser.add_argument("--num-val", type=int, default=2000, help="number of validation images")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same bytes)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--background", default="textured", choices=shapes_classification.BACKGROUNDS,
                        help="textured (the default set) or plain (one colour per image: easier)")
    parser.add_argument("--extent", type=float, nargs=2, default=list(shapes_classification.EXTENT_RANGE),
                        metavar=("LOW", "HIGH"), help="the shape's diameter as a fraction of the image side")
    return parser


def main(args: argparse.Namespace):
    return shapes.make_shapes_cls(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
