"""Builds every registered backbone, checks its feature maps, and loads one checkpoint in every supported format.

This is what `make demo` runs until the detection demo exists. Nothing is downloaded: the checkpoints are written
from a randomly initialised torchvision ResNet-50 into a temporary folder.

Examples:
    python tools/backbone_table.py
    python tools/backbone_table.py --filter "resnet*" --size 128
"""
import argparse

from workbench import cli
from workbench.analysis import backbone_table


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default="", help="fnmatch pattern of backbone names, as list_backbones")
    parser.add_argument("--size", type=int, default=224, help="input size for ImageNet nets (CIFAR nets use 32)")
    return parser


def main(args: argparse.Namespace):
    return backbone_table.print_backbone_table(args.filter, args.size)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
