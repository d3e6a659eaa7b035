"""Weights from every common format: read a checkpoint file, rename it to torchvision's names, load it into a model.

Formats (detected from the keys, not from the file name):

- "torchvision": torchvision and timm classifiers (`conv1 bn1 layer1..layer4 fc`), and torchvision detectors, whose
  backbone sits under `backbone.body.` (our C4 detectors keep layer4 under `roi_heads.box_head.res5.`).
- "detectron2": `stem.conv1`, `res2.0.conv1.norm`, `res2.0.shortcut`, `linear`; detectors keep the backbone under
  `backbone.bottom_up.` (FPN) or `backbone.` with res5 under `roi_heads.res5.` (C4).
- "caffe2": the MSRA ImageNet weights as Detectron ships them (`conv1_w`, `res_conv1_bn_s`, `res2_0_branch2a_w`, ...).
  Their BatchNorm is a frozen affine `s * x + b`; it becomes running mean 0 and running variance 1 - eps, so that a
  BatchNorm with eps 1e-5 computes exactly that affine. detectron2's own ImageNet files (MSRA R-50.pkl, FAIR
  X-101-32x8d.pkl) keep the BatchNorm unfused (`_bn_gamma`, `_bn_beta`, `_bn_running_mean`, `_bn_running_var`, or
  Caffe2's `_bn_s`, `_bn_b`, `_bn_rm`, `_bn_riv`): its statistics load as they are. Grouped (ResNeXt) weights are
  stored as PyTorch stores them, (out, in / groups, 3, 3).
- "mmpretrain": torchvision names under `backbone.`, classifier `head.fc`; mmdet detectors (ResNet and ResNeXt) are
  the same layout, with their `neck.`, `rpn_head.` and `roi_head.` ignored.
- "akamaster": the CIFAR ResNets of akamaster/pytorch_resnet_cifar10 (torchvision names, classifier `linear`, saved
  from DataParallel in torch's legacy non-zip format). Their option-A shortcuts put the zero channels on both sides
  of the input's, so they load only into models built with `shortcut_pad="center"` (the `akamaster_cifar10` tags).
- "timm_v2": timm's pre-activation ResNetV2 (`stem.conv`, `stages.0.blocks.0.norm1`, `downsample.conv`, `norm`, and
  `head.fc`, a 1x1 convolution that becomes our linear `fc`); our `ResNetV2` keeps torchvision's `conv1 layer1..4 fc`.

Keys of detector heads (RPN, RoI heads other than C4's res5, FPN) are ignored with a warning; `module.`, `model.` and
`_orig_mod.` prefixes shared by every key are stripped. Floating-point tensors of another precision (float16, bfloat16,
float64) are converted to the model's; integer or boolean tensors where the model holds floats are refused.
"""
import argparse
import logging
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np
import safetensors.torch
import torch
from torch import nn

from .blocks import BASE_WIDTH, ZeroPadShortcut
from .normalization import in_unit_range
from .pretrained import PRETRAINED_CFGS
from .safe_pickle import load_pickle

logger = logging.getLogger(__name__)

BN_EPS = 1e-5
# Mappings that hold the state dict, in order of preference: the EMA weights only when there are no plain ones.
WRAPPER_KEYS = ("state_dict", "model", "blobs", "state_dict_ema", "model_ema")
# Prefixes that wrappers (DDP, Lightning-style modules, torch.compile) put in front of every key.
SHARED_PREFIXES = ("module.", "model.", "_orig_mod.")
# Parts of detectors and of mm* models that are no part of a backbone.
HEAD_PREFIXES = (
    "backbone.fpn", "backbone.top_block.", "proposal_generator.", "roi_heads.", "rpn.", "pixel_mean", "pixel_std",
    "neck.", "rpn_head.", "roi_head.", "data_preprocessor.",
)
CAFFE2_HEAD_PREFIXES = (
    "fpn_", "conv_rpn", "rpn_", "fc6_", "fc7_", "cls_score_", "bbox_pred_", "mask_fcn", "_[mask]_fcn", "conv5_mask",
    "head_conv", "kps_score", "conv_fcn",
)
CAFFE2_CLASSIFIER = {"pred_w": "fc.weight", "pred_b": "fc.bias", "fc1000_w": "fc.weight", "fc1000_b": "fc.bias"}
# Norm parameters: Detectron's frozen affine (s, b); detectron2's ImageNet files keep BatchNorm unfused (gamma, beta,
# running_mean, running_var); Caffe2's SpatialBN names its running statistics rm and riv (a variance, despite the name).
CAFFE2_NORM_PARAMS = {
    "bn_s": "weight", "bn_b": "bias", "bn_gamma": "weight", "bn_beta": "bias", "bn_running_mean": "running_mean",
    "bn_rm": "running_mean", "bn_running_var": "running_var", "bn_riv": "running_var",
}
CAFFE2_PARAMS = {"w": "weight", "b": "bias", **CAFFE2_NORM_PARAMS}
CAFFE2_BRANCHES = {"1": "shortcut", "2a": "1", "2b": "2", "2c": "3"}
CAFFE2_BLOCK = re.compile(rf"res(\d+)_(\d+)_branch(1|2a|2b|2c)_({'|'.join(CAFFE2_PARAMS)})")
CAFFE2_STEM_NORM = re.compile(rf"res_conv1_({'|'.join(CAFFE2_NORM_PARAMS)})")
DETECTRON2_BLOCK = re.compile(r"res(\d+)\.(\d+)\.(conv\d|shortcut)\.(norm\.)?(\w+)")
DETECTRON2_STEM = re.compile(r"stem\.conv1\.(norm\.)?(\w+)")
# Where torchvision-named detectors keep the ResNet: the body (FPN, C4 up to layer3), and res5 of our C4 detectors.
# Pre-activation C4 detectors also keep the final norm under `roi_heads.box_head.norm.`.
TORCHVISION_BACKBONE = {
    "backbone.body.": "", "roi_heads.box_head.res5.": "layer4.", "roi_heads.box_head.norm.": "norm.",
}
TIMM_V2_BLOCK = re.compile(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)")
# How torch's weights_only loader and `load_pickle` name a global they refuse to run.
REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL [\w.]+|refused to load global [\w.]+")
FORMAT_EXAMPLES = ("torchvision conv1.weight, detectron2 stem.conv1.weight, Caffe2 conv1_w, "
                   "mmpretrain backbone.conv1.weight or timm ResNetV2 stem.conv.weight")
# The option-A zero-channel placement (`shortcut_pad`) that a format's checkpoints need, where it is not ours.
FORMAT_SHORTCUT_PADS = {"akamaster": "center"}


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not fit the model it is loaded into; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys, shapes or dtypes do not match the model it is loaded into."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in `path`, whatever wraps it (see `read_weights`)."""
    return read_weights(path)[0]


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Reads the state dict stored in `path`, whatever wraps it, and the conventions the file states.

    `.safetensors` files are read by safetensors, zip archives (and files not named `.pkl`/`.pickle`, such as torch's
    legacy non-zip format) by `torch.load(weights_only=True)`, other `.pkl`/`.pickle` files by `load_pickle` (numpy
    arrays become tensors).
    The state dict is taken from `state_dict`, `model` or `blobs` (Detectron), else from `state_dict_ema` or
    `model_ema`; keys ending in `_momentum` (Detectron's optimizer state) and entries that are not arrays are dropped.

    Args:
        path: The checkpoint file.

    Returns:
        Key to CPU tensor, in the file's own names; and the file's `conventions` entry (our training checkpoints
        save the model's, see `backbones.conventions`), empty when it has none.

    Raises:
        CheckpointNotFoundError: `path` does not exist (a FileNotFoundError).
        CheckpointError: The file is empty, cannot be read or holds no tensors; the message names the path and the
            reason (a ValueError).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes)")
    try:
        content = _read_file(path)
    except Exception as error:
        raise CheckpointError(_unreadable(path, error)) from error
    state_dict = _unwrap(content)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"cannot read checkpoint {path}: it holds a {type(state_dict).__name__}, "
                              "not a state dict")
    stated = content.get("conventions") if isinstance(content, Mapping) else None
    return _as_tensors(state_dict, path), in_unit_range(stated) if isinstance(stated, Mapping) else {}


def _unreadable(path: str, error: Exception) -> str:
    """Why `path` cannot be read, in one line: a refused global (the file could run code when loaded), else the
    first sentence of the reader's message."""
    message = str(error)
    if refused := REFUSED_GLOBAL.search(message):
        return (f"cannot read checkpoint {path}: refused: it holds objects other than tensors and plain containers, "
                f"which could run code when loaded ({refused.group(0)})")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reason = lines[0].split(". ")[0] if lines else type(error).__name__
    return f"cannot read checkpoint {path} (truncated, or not a checkpoint): {reason}"


def _read_file(path: str) -> object:
    if path.endswith(".safetensors"):
        return safetensors.torch.load_file(path, device="cpu")
    if path.endswith((".pkl", ".pickle")) and not zipfile.is_zipfile(path):
        return load_pickle(path)
    # Training scripts (torchvision references, timm) save their argparse arguments next to the weights.
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _unwrap(content: object) -> object:
    while isinstance(content, Mapping):
        key = next((k for k in WRAPPER_KEYS if isinstance(content.get(k), Mapping)), None)
        if key is None:
            return content
        content = content[key]
    return content


def _as_tensors(state_dict: Mapping, path: str) -> dict[str, torch.Tensor]:
    tensors, ignored = {}, []
    for key, value in state_dict.items():
        if key.endswith("_momentum"):
            continue
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biufc":
            value = torch.from_numpy(np.array(value))
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            ignored.append(key)
    if ignored:
        logger.warning("%s: ignoring %d entries that are not tensors: %s", path, len(ignored), ", ".join(ignored[:5]))
    if not tensors:
        raise CheckpointError(f"cannot read checkpoint {path}: it holds no tensors")
    return tensors


def convert_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Renames a state dict from any supported format to torchvision's names.

    Args:
        state_dict: Key to tensor, as `read_checkpoint` returns it.

    Returns:
        The renamed state dict and the detected format: "torchvision", "detectron2", "caffe2", "mmpretrain" or
        "akamaster".
        Keys of detector heads are dropped; keys the format does not know are kept unchanged, so that loading
        reports them as unexpected.

    Raises:
        CheckpointError: The format is not recognised; the message lists a few keys and the keys expected.
    """
    converted, name, _ = _convert(state_dict)
    return converted, name


def detect_format(state_dict: Mapping[str, torch.Tensor], origin: str | None = None) -> str:
    """The format of a state dict (see `convert_state_dict`), from its keys.

    Raises:
        CheckpointError: The format is not recognised; the message names `origin` (when given), lists a few keys
            and the keys expected.
    """
    state_dict = strip_shared_prefixes(state_dict)
    name = next((name for name, detect, _ in FORMATS if detect(state_dict)), None)
    if name is None:
        raise CheckpointError(f"{f'cannot load {origin}: ' if origin else ''}not a ResNet checkpoint: found keys "
                              f"{', '.join(list(state_dict)[:6])}; expected a ResNet's ({FORMAT_EXAMPLES})")
    return name


def _convert(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """`convert_state_dict`, plus the keys of detector heads it dropped."""
    state_dict = strip_shared_prefixes(state_dict)
    name = detect_format(state_dict)
    rename = next(rename for format_name, _, rename in FORMATS if format_name == name)
    converted, ignored = {}, []
    for key, value in state_dict.items():
        new_key = rename(key)
        if new_key is None:
            ignored.append(key)
        else:
            converted[new_key] = value
    if name == "caffe2":
        _add_affine_statistics(converted)
    if name == "timm_v2" and converted.get("fc.weight", torch.empty(0)).dim() == 4:
        converted["fc.weight"] = converted["fc.weight"].flatten(1)  # timm's 1x1-convolution classifier
    return converted, name, ignored


def strip_shared_prefixes(state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """`state_dict` without the prefixes that every key shares from a wrapper (DataParallel / DDP's `module.`, a
    `model.` attribute, torch.compile's `_orig_mod.`), however nested."""
    prefix = next((p for p in SHARED_PREFIXES if state_dict and all(k.startswith(p) for k in state_dict)), None)
    if prefix is None:
        return state_dict
    return strip_shared_prefixes({k[len(prefix):]: v for k, v in state_dict.items()})


def _block_key(stage: str, block: str, conv: str, is_norm: bool, param: str) -> str:
    """The torchvision name of a parameter of conv `conv` ("1".."3" or "shortcut") of block `block` of `resN`."""
    if conv == "shortcut":
        module = "downsample.1" if is_norm else "downsample.0"
    else:
        module = f"bn{conv}" if is_norm else f"conv{conv}"
    return f"layer{int(stage) - 1}.{block}.{module}.{param}"


def _rename_torchvision(key: str) -> str | None:
    for prefix, module in TORCHVISION_BACKBONE.items():
        if key.startswith(prefix):
            return module + key[len(prefix):]
    return None if key.startswith(HEAD_PREFIXES) else key


def _rename_mmpretrain(key: str) -> str | None:
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    if key.startswith(HEAD_PREFIXES):
        return None
    return key.removeprefix("backbone.")


def rename_detectron2(key: str) -> str | None:
    """torchvision's name of a detectron2 ResNet key (`roi_heads.res5.` taken as layer4), None for other detector
    heads; keys it does not know are returned as they are."""
    if key.startswith("roi_heads.res5."):
        key = key[len("roi_heads."):]
    elif key.startswith(HEAD_PREFIXES):
        return None
    else:
        key = key.removeprefix("backbone.bottom_up.").removeprefix("backbone.")
    if match := DETECTRON2_STEM.fullmatch(key):
        norm, param = match.groups()
        return f"{'bn1' if norm else 'conv1'}.{param}"
    if match := DETECTRON2_BLOCK.fullmatch(key):
        stage, block, conv, norm, param = match.groups()
        return _block_key(stage, block, conv.removeprefix("conv"), bool(norm), param)
    if key.startswith("linear."):
        return "fc." + key[len("linear."):]
    return key


def _rename_caffe2(key: str) -> str | None:
    if key in CAFFE2_CLASSIFIER:
        return CAFFE2_CLASSIFIER[key]
    if key.startswith(CAFFE2_HEAD_PREFIXES):
        return None
    if key in ("conv1_w", "conv1_b"):
        return f"conv1.{CAFFE2_PARAMS[key[-1]]}"
    if match := CAFFE2_STEM_NORM.fullmatch(key):
        return f"bn1.{CAFFE2_PARAMS[match.group(1)]}"
    if match := CAFFE2_BLOCK.fullmatch(key):
        stage, block, branch, param = match.groups()
        return _block_key(stage, block, CAFFE2_BRANCHES[branch], param.startswith("bn_"), CAFFE2_PARAMS[param])
    return key


def _add_affine_statistics(state_dict: dict[str, torch.Tensor]) -> None:
    """Gives every Caffe2 affine norm (1-D weight and bias) running statistics that make BatchNorm that affine."""
    norms = [k.removesuffix(".weight") for k, v in state_dict.items() if k.endswith(".weight") and v.dim() == 1]
    for norm in norms:
        weight = state_dict[f"{norm}.weight"]
        state_dict.setdefault(f"{norm}.running_mean", torch.zeros_like(weight))
        state_dict.setdefault(f"{norm}.running_var", torch.full_like(weight, 1.0 - BN_EPS))


def _is_caffe2(state_dict: Mapping) -> bool:
    return "conv1_w" in state_dict or any(CAFFE2_BLOCK.fullmatch(k) for k in state_dict)


def _is_detectron2(state_dict: Mapping) -> bool:
    stems = ("stem.conv1.weight", "backbone.stem.conv1.weight", "backbone.bottom_up.stem.conv1.weight")
    return any(k in state_dict for k in stems)


def _is_mmpretrain(state_dict: Mapping) -> bool:
    return "backbone.conv1.weight" in state_dict


def _is_akamaster(state_dict: Mapping) -> bool:
    return "conv1.weight" in state_dict and "linear.weight" in state_dict


def _rename_akamaster(key: str) -> str:
    return "fc." + key[len("linear."):] if key.startswith("linear.") else key


def _is_timm_v2(state_dict: Mapping) -> bool:
    return "stem.conv.weight" in state_dict


def _rename_timm_v2(key: str) -> str:
    if key.startswith("stem.conv."):
        return "conv1." + key[len("stem.conv."):]
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    if match := TIMM_V2_BLOCK.fullmatch(key):
        stage, block, rest = match.groups()
        return f"layer{int(stage) + 1}.{block}.{rest.replace('downsample.conv.', 'downsample.')}"
    return key


def _is_torchvision(state_dict: Mapping) -> bool:
    return any(k in state_dict for k in ("conv1.weight", "backbone.body.conv1.weight"))


FORMATS: tuple[tuple[str, Callable[[Mapping], bool], Callable[[str], str | None]], ...] = (
    ("caffe2", _is_caffe2, _rename_caffe2),
    ("detectron2", _is_detectron2, rename_detectron2),
    ("mmpretrain", _is_mmpretrain, _rename_mmpretrain),
    ("akamaster", _is_akamaster, _rename_akamaster),
    ("timm_v2", _is_timm_v2, _rename_timm_v2),
    ("torchvision", _is_torchvision, _rename_torchvision),
)


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
        state_dict, format_name, ignored = _convert(raw)
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
