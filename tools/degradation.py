"""The degradation problem (the paper's Fig. 6): plain and residual nets of two depths trained under one recipe,
training and test error against iterations.

The paper's claim: the deeper plain net has the higher training error (degradation), while the deeper ResNet has the
lower one. This tool measures it on whatever data the config names and reports what it finds: a table (parameters,
final training and test error, the iteration where the warm-up ended), a one-line verdict, `degradation.png`, and the
layer_responses.py command that draws Fig. 7 from the same checkpoints.

The default config follows the paper's CIFAR recipe in shape (batch 128, lr 0.1 divided by 10 at 50% and 75% of the
run, and the paper's warm-up of very deep nets: lr 0.01 until the training error is below 80%; gradients clipped to
norm 1, without which ResNet-56 fell back to chance at the switch to 0.1), shortened to 400 iterations on an
easier offline 32 px shapes set (plain background, large shapes; generated on first use), about 30-40 minutes for
the four nets on 2 CPU cores.

Examples:
    python tools/degradation.py                                          # plain/ResNet-20/56 on shapes, CPU
    python tools/degradation.py --config configs/classification/resnet20_cifar10.yaml --output-dir output/fig6 \
        data.holdout=0 train.eval_period=2000
    python tools/degradation.py solver.max_iter=900 --models plain20_cifar plain110_cifar resnet20_cifar resnet110_cifar
"""
import argparse

from workbench import cli
from workbench.analysis import degradation


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/classification/degradation_shapes_cpu.yaml",
                        help="train_cls.py config: the recipe every model trains with")
    parser.add_argument("--models", nargs="+", default=list(degradation.DEFAULT_MODELS),
                        help="plain and residual models")
    parser.add_argument("--output-dir", default="output/degradation", help="one folder per model, and the picture")
    parser.add_argument("--retrain", action="store_true", help="train again even where model_final.pth exists")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. solver.max_iter=300")
    return parser


def main(args: argparse.Namespace):
    return degradation.run_degradation(args.config, args.models, args.output_dir, args.overrides, args.retrain)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
