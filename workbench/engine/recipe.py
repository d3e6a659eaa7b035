"""The batch of a recipe: `data.batch_size` is the total of one iteration (one optimizer step) over all processes,
detectron2's IMS_PER_BATCH, so that a recipe means the same on any number of GPUs.

Each process takes `batch_size / world_size` images per iteration, in `solver.accumulate` micro-batches of
`batch_size / (world_size * accumulate)`: accumulation saves memory and leaves the recipe as it is.
`solver.reference_batch_size` rescales a recipe to another total batch by the linear scaling rule (detectron2's
REFERENCE_WORLD_SIZE).
"""
import copy
import math

from workbench.errors import UserError

PERIODS = (("solver", "max_iter"), ("solver", "warmup_iters"), ("train", "checkpoint_period"),
           ("train", "eval_period"))  # iteration counts that scale inversely with the batch (0 stays 0: off)


def processes(count: int) -> str:
    """'1 process', '2 processes'."""
    return f"{count} process" if count == 1 else f"{count} processes"


def micro_batch_size(batch_size: int, world_size: int, accumulate: int = 1) -> int:
    """The images of one forward pass of one process: `batch_size` per iteration shared by `world_size` processes,
    each in `accumulate` micro-batches.

    Raises:
        UserError: `batch_size` does not divide among them; the message names a multiple that does.
    """
    parts = world_size * accumulate
    if batch_size % parts:
        among = processes(world_size) + (f" x solver.accumulate={accumulate} micro-batches" if accumulate > 1 else "")
        raise UserError(f"data.batch_size={batch_size} does not divide among {among}; set a multiple of {parts} "
                        f"(e.g. data.batch_size={math.ceil(batch_size / parts) * parts})")
    return batch_size // parts


def scaled_to_batch(config: dict) -> dict:
    """`config` rescaled from `solver.reference_batch_size` to its `data.batch_size` by the linear scaling rule: lr
    times batch_size / reference; iterations, steps, warm-up and the checkpoint and evaluation periods divided by it
    (rounded, at least 1). Returns `config` itself when no reference is set or it equals the batch; otherwise a copy
    whose reference is its own batch, so that scaling it again changes nothing."""
    solver, total = config["solver"], config["data"]["batch_size"]
    reference = solver["reference_batch_size"]
    if reference is None or reference == total:
        return config
    scale = total / reference
    config = copy.deepcopy(config)
    config["solver"]["lr"] *= scale
    config["solver"]["steps"] = [max(1, round(step / scale)) for step in solver["steps"]]
    for section, key in PERIODS:
        if config[section][key]:
            config[section][key] = max(1, round(config[section][key] / scale))
    config["solver"]["reference_batch_size"] = total
    return config


def recipe_line(config: dict, world_size: int, num_images: int) -> str:
    """The effective recipe in one line: processes, total batch, lr, iterations and epochs of `num_images`."""
    solver, total = config["solver"], config["data"]["batch_size"]
    share = total // world_size
    micro = f" ({solver['accumulate']} micro-batches of {share // solver['accumulate']})" \
        if solver["accumulate"] > 1 else ""
    epochs = solver["max_iter"] * total / num_images
    return (f"effective recipe: {processes(world_size)} x {share} = total batch {total}{micro}, lr {solver['lr']:g}, "
            f"{solver['max_iter']} iterations = {epochs:.3g} epochs of {num_images} training images")
