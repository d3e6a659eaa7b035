"""Classification training that prints `rank R trained on N images` for every forward pass (run by test_recipe.py
under torchrun; it is no test itself).

Usage: python counting_training.py [train_cls.py arguments ...]
"""
import sys

from workbench import cli
from workbench.cli import training
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.engine import distributed
from workbench.tasks.classification import ClassificationTask


class CountingTask(ClassificationTask):
    def step(self, device):
        step = super().step(device)

        def wrapped(model, batch):
            print(f"rank {distributed.get_rank()} trained on {len(batch[1])} images", flush=True)
            return step(model, batch)
        return wrapped


if __name__ == "__main__":
    cli.run(lambda args: training.train(args, CLASSIFICATION_DEFAULTS, CountingTask), training.args_parser("", ""),
            sys.argv[1:])
