"""Standard deviations of layer responses, as in the paper's Fig. 7: the output of every 3x3 convolution of the
residual functions after its BatchNorm, before the ReLU and the addition (bn1 and bn2 of a basic block, bn2 of a
bottleneck; the stem is not a residual function and is left out), over a set of validation images.

The paper's observation: residual functions are closer to zero than the unreferenced functions of plain nets, so
ResNets have smaller responses, and deeper ResNets smaller ones still.

Examples:
    python tools/layer_responses.py output/degradation/plain20_cifar/model_final.pth \
        output/degradation/resnet20_cifar/model_final.pth --output-dir layer_responses.png
"""
import argparse

from workbench import cli
from workbench.analysis import layer_responses


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="train_cls.py checkpoints (model_final.pth)")
    parser.add_argument("--labels", nargs="+", help="legend labels (default: the model names)")
    parser.add_argument("--num-images", type=int, default=1000, help="validation images to measure on")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--output-dir", "--out", default="layer_responses.png", help="where the picture goes")
    return parser


def main(args: argparse.Namespace):
    return layer_responses.plot_layer_responses(args.checkpoints, args.output_dir, args.labels, args.num_images,
                                               args.batch_size)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
