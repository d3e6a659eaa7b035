"""Loading weights of any supported format into a model, and the mismatch policy: what is optional (the classifier,
detector heads, batch counters), what is converted (float precision), what is refused and how the refusal reads."""
import logging
import os
from collections import Counter
from collections.abc import Mapping

import torch
from torch import nn

from ..blocks import BASE_WIDTH, ZeroPadShortcut
from ..pretrained import PRETRAINED_CFGS
from .errors import CheckpointError, CheckpointMismatchError
from .formats import FORMAT_SHORTCUT_PADS, convert_with_ignored
from .reading import read_checkpoint

logger = logging.getLogger(__name__)


def load_weights(
    model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *, strict: bool = True,
    origin: str | None = None,
) -> dict:
    """Loads a checkpoint of any supported format into `model` (torchvision names).

    `num_batches_tracked` is ignored on both sides. The classifier (`model.pretrained_cfg["classifier"]`, default
    "fc") is optional: the checkpoint's is dropped with a warning when the model has none or its shape differs, and
    a checkpoint without one leaves the model's as initialised; either way the model keeps its fresh classifier.
    A detector checkpoint gives its backbone; its neck and heads are ignored with a warning. Floating-point tensors
    of another precision are converted to the model's (logged); integer or boolean ones where the model holds
    floats do not match.

    Args:
        model: The model to fill, changed in place.
        source: A checkpoint file, or a state dict already read.
        strict: Raise on any other missing, unexpected or mismatched key; when False, load what matches.
        origin: how messages name a state dict given as `source` (e.g. the file it was read from).

    Returns:
        A report: `format`, and the lists `missing` (model keys the checkpoint lacks), `unexpected` (checkpoint keys
        the model lacks), `mismatched` (keys of another shape, or not floating-point where the model's are; not
        loaded), `dropped` (the checkpoint's classifier keys, not loaded) and `ignored` (keys of a detector's neck
        and heads, in the file's names).

    Raises:
        CheckpointNotFoundError: `source` is a path that does not exist (a FileNotFoundError).
        CheckpointError: The file cannot be read or holds no ResNet (a ValueError).
        CheckpointMismatchError: `strict` and the checkpoint does not match; the message names the file and lists,
            for missing, unexpected and mismatched keys, the count and the first keys, and says when the two ResNets
            differ in block kind or depth. Also, strict or not, when the checkpoint's format needs option-A
            shortcuts that place their zero channels otherwise than the model's (see `check_shortcut_pad`).
    """
    origin = origin or ("the given state dict" if isinstance(source, Mapping) else os.fspath(source))
    raw = source if isinstance(source, Mapping) else read_checkpoint(source)
    try:
        state_dict, format_name, ignored = convert_with_ignored(raw)
    except CheckpointError as error:
        raise CheckpointError(f"cannot load {origin}: {error}") from error
    if ignored:
        logger.warning("%s: loading the backbone only; ignoring %d keys of a detector's neck and heads (%s)", origin,
                       len(ignored), key_groups(ignored))
    state_dict = without_batch_counters(state_dict)
    expected = without_batch_counters(model.state_dict())
    classifier = _classifier_prefixes(model)
    missing = [k for k in expected if k not in state_dict]
    missing_classifier = [k for k in missing if k.startswith(classifier)]
    if missing_classifier:
        logger.warning("%s has no classifier; the model's %s keep their initialisation", origin,
                       ", ".join(missing_classifier))
    dropped = _drop_classifier(state_dict, expected, classifier, origin)
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = tensor_mismatches(state_dict, expected)
    required_missing = [k for k in missing if not k.startswith(classifier)]
    if strict and (required_missing or unexpected or mismatched):
        raise CheckpointMismatchError(mismatch_message(
            f"checkpoint {origin} ({format_name} format)", required_missing, unexpected,
            [f"{k} ({difference})" for k, difference in mismatched.items()], _mismatch_hint(state_dict, expected)))
    check_shortcut_pad(model, format_name, origin)

    loadable = {k: v for k, v in state_dict.items() if k in expected and k not in mismatched}
    note_conversions(loadable, expected, origin)
    model.load_state_dict(loadable, strict=False)
    logger.info("loaded %d tensors from %s (%s format)", len(loadable), origin, format_name)
    return dict(format=format_name, missing=missing, unexpected=unexpected, mismatched=list(mismatched),
                dropped=dropped, ignored=ignored)


def check_shortcut_pad(model: nn.Module, format_name: str, origin: str) -> None:
    """Refuses checkpoints of a format trained with option-A shortcuts that place their zero channels otherwise than
    the model's: every key would match, and every logit be wrong.

    Raises:
        CheckpointMismatchError: The message names the file, both placements and the tag or option to use.
    """
    needed = FORMAT_SHORTCUT_PADS.get(format_name)
    placements = sorted({m.placement for m in model.modules() if isinstance(m, ZeroPadShortcut)} - {needed})
    if needed is None or not placements:
        return
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture", "")
    tags = [f"{arch}.{tag}" for tag, cfg in PRETRAINED_CFGS.get(arch, {}).items() if cfg["file_format"] == format_name]
    option = f"shortcut_pad={needed!r}"
    fix = f"Create the model as {tags[0]!r} or pass {option}" if tags else f"Build the model with {option}"
    raise CheckpointMismatchError(
        f"checkpoint {origin} ({format_name} format) needs option-A shortcuts with {option}, the model has "
        f"shortcut_pad={placements[0]!r}: its logits would be wrong. {fix}."
    )


def without_batch_counters(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` without BatchNorm's `num_batches_tracked` counters, which checkpoint and model need not share."""
    return {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def tensor_mismatches(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The keys of both whose tensors cannot be loaded, with what differs: the shape, or the kind of number (an
    integer or boolean tensor where the model holds floats, or the reverse)."""
    differences = {}
    for key, value in state_dict.items():
        target = expected.get(key)
        if target is None:
            continue
        if value.shape != target.shape:
            differences[key] = f"checkpoint {tuple(value.shape)}, model {tuple(target.shape)}"
        elif value.is_floating_point() != target.is_floating_point():
            differences[key] = f"checkpoint {dtype_name(value)}, model {dtype_name(target)}"
    return differences


def note_conversions(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                     origin: str) -> None:
    """Logs the tensors that loading converts to the model's precision (float16 to float32, say)."""
    pairs = Counter(f"{dtype_name(v)} to {dtype_name(expected[k])}" for k, v in state_dict.items()
                    if v.dtype != expected[k].dtype)
    if pairs:
        logger.info("%s: converting %s", origin, ", ".join(f"{n} tensors from {pair}" for pair, n in pairs.items()))


def dtype_name(tensor: torch.Tensor) -> str:
    """`float16` for a torch.float16 tensor."""
    return str(tensor.dtype).removeprefix("torch.")


def key_groups(keys: list[str], limit: int = 6) -> str:
    """The distinct first two parts of `keys` ("rpn.head, roi_heads.box_head"), the first `limit` of them."""
    groups = list(dict.fromkeys(".".join(key.split(".")[:2]) for key in keys))
    return ", ".join(groups[:limit]) + (", ..." if len(groups) > limit else "")


def resnet_layout(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The block kind and the blocks per stage of a ResNet in torchvision names ("bottleneck blocks 3-4-6-3"), with
    the groups x channels per group of the first 3x3 where they are not a plain ResNet's ("..., 32x4d" for ResNeXt,
    "..., 1x128d" for wide ResNets), or None when it has no `layer1`."""
    depths = []
    while blocks := {k.split(".")[1] for k in state_dict if k.startswith(f"layer{len(depths) + 1}.")}:
        depths.append(len(blocks))
    if not depths:
        return None
    kind = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    layout = f"{kind} blocks {'-'.join(map(str, depths))}"
    grouped = state_dict.get("layer1.0.conv2.weight") if kind == "bottleneck" else None
    if grouped is None or grouped.dim() != 4:
        return layout
    width, group_width = grouped.shape[:2]
    if width == group_width == BASE_WIDTH:
        return layout
    return f"{layout}, {width // group_width}x{group_width}d"


def _mismatch_hint(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """What to do about a mismatch: another backbone when the ResNets differ, float weights for integer ones."""
    found, wanted = resnet_layout(state_dict), resnet_layout(expected)
    if found and wanted and found != wanted:
        return (f"The checkpoint is a ResNet of {found}, the model one of {wanted}: create the backbone the "
                "checkpoint was trained as.")
    if any(not v.is_floating_point() for k, v in state_dict.items() if k in expected):
        return ("Integer or boolean tensors cannot be weights of this model (a quantized or corrupted file?); give "
                "floating-point weights (float32, float16 or bfloat16).")
    return "Pass strict=False to load the matching tensors only."


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "fc"
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{name}." for name in names)


def _drop_classifier(
    state_dict: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor], classifier: tuple[str, ...], origin: str
) -> list[str]:
    """Removes the checkpoint's classifier from `state_dict` when the model has none or a differently shaped one."""
    keys = [k for k in state_dict if k.startswith(classifier)]
    has_classifier = any(k.startswith(classifier) for k in expected)
    if not keys or (has_classifier and all(k in expected and state_dict[k].shape == expected[k].shape for k in keys)):
        return []
    shapes = ", ".join(f"{k} {tuple(state_dict[k].shape)}" for k in keys)
    reason = "the model has a differently shaped one" if has_classifier else "the model has no classifier"
    logger.warning("%s: dropping the checkpoint's classifier (%s): %s; the model keeps its own", origin, shapes, reason)
    for key in keys:
        del state_dict[key]
    return keys


def mismatch_message(subject: str, missing: list, unexpected: list, mismatched: list, hint: str) -> str:
    """`subject` does not match the model: count and first five keys of each kind, then `hint`."""
    lines = [f"{subject} does not match the model:"]
    kinds = (("missing keys", missing), ("unexpected keys", unexpected), ("shape or dtype mismatches", mismatched))
    for kind, keys in kinds:
        listed = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        lines.append(f"  {len(keys)} {kind}" + (f": {listed}" if keys else ""))
    lines.append(hint)
    return "\n".join(lines)
