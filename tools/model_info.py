"""Parameters and multiply-adds of registered models, counted by torch.utils.flop_counter on a real forward.

The paper's Table 1 "FLOPs" are multiply-adds: FlopCounterMode counts 2 FLOPs per multiply-add, so GMACs here are
its count / 2 (torchvision's "GFLOPS" in its model tables are the same multiply-adds).

Examples:
    python tools/model_info.py                                   # every registered model at its own input size
    python tools/model_info.py "resnet*" --size 224
    python tools/model_info.py resnet50 resnet101 resnet152 --style caffe
    python tools/model_info.py resnet50 --per-stage
"""
import argparse

from workbench import cli
from workbench.analysis import model_info


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="model names or fnmatch patterns (default: every registered model)")
    parser.add_argument("--size", type=int, help="input side in pixels (default: each model's pretrained_cfg size)")
    parser.add_argument("--style", choices=["pytorch", "caffe"], help="where bottlenecks put their stride")
    parser.add_argument("--num-classes", type=int, help="classifier size (default: the model's)")
    parser.add_argument("--per-stage", action="store_true", help="also print the GMACs of conv1, layer1.. and fc")
    return parser


def main(args: argparse.Namespace):
    return model_info.print_model_facts(args.names, args.size, args.style, args.num_classes, args.per_stage)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
