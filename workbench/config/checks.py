"""Values a config may not hold, checked before any work starts: each problem is a UserError naming the key, the
value found and what is expected."""
import difflib

from backbones.builders import CREATE_OPTIONS
from heads import valid_options
from heads.weights.catalog import named_weights
from heads.detectors import NECKS
from workbench.data.images import UNREADABLE_POLICIES
from workbench.errors import UserError


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


RULES = {  # key: (test, what is expected)
    "solver.lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "solver.momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "solver.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "solver.weight_decay_norm": (lambda v: v is None or (_number(v) and v >= 0), "null or a number >= 0"),
    "solver.weight_decay_bias": (lambda v: v is None or (_number(v) and v >= 0), "null or a number >= 0"),
    "solver.max_iter": (lambda v: _integer(v) and v > 0, "an integer > 0"),
    "solver.warmup_iters": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "solver.warmup_factor": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "solver.warmup_until_error": (lambda v: v is None or (_number(v) and 0 < v < 100),
                                  "null or a training error in percent, in (0, 100)"),
    "solver.gamma": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "solver.steps": (lambda v: isinstance(v, list) and all(_integer(s) and s > 0 for s in v) and v == sorted(v),
                     "a list of increasing iterations > 0"),
    "solver.clip_grad_norm": (lambda v: v is None or (_number(v) and v > 0), "null or a number > 0"),
    "solver.accumulate": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "solver.reference_batch_size": (lambda v: v is None or (_integer(v) and v >= 1), "null or an integer >= 1"),
    "solver.on_nonfinite": (lambda v: v in ("stop", "skip"), "stop or skip"),
    "data.batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "data.workers": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "data.unreadable_images": (lambda v: v in UNREADABLE_POLICIES, " or ".join(UNREADABLE_POLICIES)),
    "train.log_period": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "train.checkpoint_period": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: no periodic checkpoints)"),
    "train.checkpoints_kept": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: keep them all)"),
    "train.grad_checkpointing": (lambda v: isinstance(v, bool), "true or false"),
    "train.eval_period": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: evaluate at the end only)"),
    "eval.batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "model.num_classes": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "model.neck": (lambda v: v in NECKS, " or ".join(NECKS)),
}


def check_values(config: dict) -> dict:
    """Raises a UserError for the first impossible value of `config` (see `RULES`, warm-up shorter than the run, one
    warm-up at a time, and `check_model_options`); returns `config`."""
    for key, (valid, expected) in RULES.items():
        section, name = key.split(".")
        if name in config.get(section, {}) and not valid(config[section][name]):
            raise UserError(f"{key}={config[section][name]!r} is impossible; expected {expected}")
    check_model_options(config["model"])
    solver = config["solver"]
    if solver["warmup_iters"] >= solver["max_iter"]:
        raise UserError(f"solver.warmup_iters={solver['warmup_iters']} is not below solver.max_iter="
                        f"{solver['max_iter']}: the run would end during warm-up")
    if solver.get("warmup_until_error") is not None and solver["warmup_iters"]:
        raise UserError(f"solver.warmup_until_error={solver['warmup_until_error']} and solver.warmup_iters="
                        f"{solver['warmup_iters']} are two warm-ups; set solver.warmup_iters=0 (the warm-up then lasts "
                        f"until the training error is below warmup_until_error) or warmup_until_error=null")
    return config


def check_model_options(model: dict) -> None:
    """Raises a UserError for the first key of `model["options"]` that the model does not take, listing those it
    takes, closest first: a detector's (`heads.valid_options` of its kind and neck, or of the named weights of
    `model.weights`) or a classifier's (`create_backbone`'s, but num_classes: `model.num_classes` sets it). A null
    option keeps the model's default, as the builders read it, so any key may be null."""
    if "kind" in model:
        spec = named_weights(model["weights"]) or model
        valid = valid_options(spec["kind"], spec["neck"])
        what = f"a {spec['kind']} detector with neck={spec['neck']!r}"
    else:
        valid, what = tuple(option for option in CREATE_OPTIONS if option != "num_classes"), "a classifier"
    unknown = sorted(key for key, value in model["options"].items() if value is not None and key not in valid)
    if unknown:
        expected = difflib.get_close_matches(unknown[0], valid, n=len(valid), cutoff=0)
        raise UserError(f"model.options.{unknown[0]} is not an option of {what}; expected one of "
                        f"{', '.join(expected)}")
