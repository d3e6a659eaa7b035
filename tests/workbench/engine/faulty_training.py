"""Detection or classification training with a NaN loss injected on one rank at one iteration (run by test_faults.py
under torchrun; it is no test itself).

Usage: python faulty_training.py {det,cls} RANK ITERATION [train_det.py / train_cls.py arguments ...]
"""
import sys

from workbench import cli
from workbench.cli import training
from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS
from workbench.engine import distributed
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.detection import DetectionTask

TASKS = {"det": (DetectionTask, DETECTION_DEFAULTS), "cls": (ClassificationTask, CLASSIFICATION_DEFAULTS)}


def main() -> None:
    tool, nan_rank, nan_iteration, *arguments = sys.argv[1:]
    task, defaults = TASKS[tool]

    class FaultyTask(task):
        def step(self, device):
            step, calls = super().step(device), [0]

            def wrapped(model, batch):
                losses = step(model, batch)
                calls[0] += 1
                if calls[0] == int(nan_iteration) and distributed.get_rank() == int(nan_rank):
                    name = sorted(key for key in losses if key.startswith("loss"))[0]
                    losses[name] = losses[name] * float("nan")
                return losses
            return wrapped

    cli.run(lambda args: training.train(args, defaults, FaultyTask), training.args_parser("", ""), arguments)


if __name__ == "__main__":
    main()
