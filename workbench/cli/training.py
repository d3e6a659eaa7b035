"""The command line of train_det.py and train_cls.py: its parser, and its arguments turned into a training run."""
import argparse

from workbench.config.loader import format_config
from workbench.engine import trainer


def args_parser(description: str, configs: str) -> argparse.ArgumentParser:
    """--config, --output-dir, --resume, --print-config and key=value overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help=f"YAML config (see {configs})")
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output dir")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. solver.lr=0.01")
    return parser


def train(args: argparse.Namespace, defaults: dict, task: type[trainer.Task]) -> dict:
    """Prints the config (--print-config) or trains `task` on it (`trainer.run`)."""
    config = trainer.resolve_config(defaults, args.config, args.overrides, args.output_dir)
    if args.print_config:
        print(format_config(config))
        return {}
    return trainer.run(config, task, args.resume)
