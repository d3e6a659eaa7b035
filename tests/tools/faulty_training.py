"""train_det.py or train_cls.py with a NaN loss injected on one rank at one iteration (run by test_faults.py under
torchrun; it is no test itself).

Usage: python faulty_training.py {det,cls} RANK ITERATION [the tool's arguments ...]
"""
import sys

import distributed
import train_cls
import train_det

STEPS = {"det": (train_det, "detection_step"), "cls": (train_cls, "classification_step")}


def main() -> None:
    tool, nan_rank, nan_iteration, *arguments = sys.argv[1:]
    module, step_name = STEPS[tool]
    make_step = getattr(module, step_name)

    def faulty_step(device):
        step, calls = make_step(device), [0]

        def wrapped(model, batch):
            losses = step(model, batch)
            calls[0] += 1
            if calls[0] == int(nan_iteration) and distributed.get_rank() == int(nan_rank):
                name = sorted(key for key in losses if key.startswith("loss"))[0]
                losses[name] = losses[name] * float("nan")
            return losses
        return wrapped

    setattr(module, step_name, faulty_step)
    module.main(module.get_args_parser().parse_args(arguments))


if __name__ == "__main__":
    main()
