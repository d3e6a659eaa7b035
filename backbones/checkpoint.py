"""Weights from every common format: read a checkpoint file, rename it to torchvision's names, load it into a model.

Formats (detected from the keys, not from the file name):

- "torchvision": torchvision and timm classifiers (`conv1 bn1 layer1..layer4 fc`), and torchvision detectors, whose
  backbone sits under `backbone.body.`.
- "detectron2": `stem.conv1`, `res2.0.conv1.norm`, `res2.0.shortcut`, `linear`; detectors keep the backbone under
  `backbone.bottom_up.` (FPN) or `backbone.` with res5 under `roi_heads.res5.` (C4).
- "caffe2": the MSRA ImageNet weights as Detectron ships them (`conv1_w`, `res_conv1_bn_s`, `res2_0_branch2a_w`, ...).
  Their BatchNorm is a frozen affine `s * x + b`; it becomes running mean 0 and running variance 1 - eps, so that a
  BatchNorm with eps 1e-5 computes exactly that affine.
- "mmpretrain": torchvision names under `backbone.`, classifier `head.fc`.

Keys of detector heads (RPN, RoI heads other than C4's res5, FPN) are dropped; `module.`, `model.` and `_orig_mod.`
prefixes shared by every key are stripped.
"""
import argparse
import logging
import os
import re
import zipfile
from collections.abc import Callable, Mapping

import numpy as np
import safetensors.torch
import torch
from torch import nn

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
CAFFE2_PARAMS = {"w": "weight", "b": "bias", "bn_s": "weight", "bn_b": "bias"}
CAFFE2_BRANCHES = {"1": "shortcut", "2a": "1", "2b": "2", "2c": "3"}
CAFFE2_BLOCK = re.compile(r"res(\d+)_(\d+)_branch(1|2a|2b|2c)_(w|b|bn_s|bn_b)")
CAFFE2_STEM_NORM = re.compile(r"res_conv1_(bn_s|bn_b)")
DETECTRON2_BLOCK = re.compile(r"res(\d+)\.(\d+)\.(conv\d|shortcut)\.(norm\.)?(\w+)")
DETECTRON2_STEM = re.compile(r"stem\.conv1\.(norm\.)?(\w+)")


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model it is loaded into."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads the state dict stored in `path`, whatever wraps it.

    `.safetensors` files are read by safetensors, zip archives (and files not named `.pkl`/`.pickle`) by
    `torch.load(weights_only=True)`, other `.pkl`/`.pickle` files by `load_pickle` (numpy arrays become tensors).
    The state dict is taken from `state_dict`, `model` or `blobs` (Detectron), else from `state_dict_ema` or
    `model_ema`; keys ending in `_momentum` (Detectron's optimizer state) and entries that are not arrays are dropped.

    Args:
        path: The checkpoint file.

    Returns:
        Key to CPU tensor, in the file's own names.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: The file cannot be read (the message names the path and the reason) or holds no tensors.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        content = _read_file(path)
    except Exception as error:
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    state_dict = _unwrap(content)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"cannot read checkpoint {path}: it holds a {type(state_dict).__name__}, not a state dict")
    return _as_tensors(state_dict, path)


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
        raise ValueError(f"cannot read checkpoint {path}: it holds no tensors")
    return tensors


def convert_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Renames a state dict from any supported format to torchvision's names.

    Args:
        state_dict: Key to tensor, as `read_checkpoint` returns it.

    Returns:
        The renamed state dict and the detected format: "torchvision", "detectron2", "caffe2" or "mmpretrain".
        Keys of detector heads are dropped; keys the format does not know are kept unchanged, so that loading
        reports them as unexpected.

    Raises:
        ValueError: The format is not recognised; the message lists a few keys.
    """
    state_dict = _strip_shared_prefixes(state_dict)
    for name, detect, rename in FORMATS:
        if detect(state_dict):
            break
    else:
        raise ValueError(f"unknown checkpoint format; example keys: {', '.join(list(state_dict)[:8])}")
    converted = {}
    for key, value in state_dict.items():
        new_key = rename(key)
        if new_key is not None:
            converted[new_key] = value
    dropped = len(state_dict) - len(converted)
    if dropped:
        logger.info("dropped %d keys of detector heads from a %s checkpoint", dropped, name)
    if name == "caffe2":
        _add_affine_statistics(converted)
    return converted, name


def _strip_shared_prefixes(state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    prefix = next((p for p in SHARED_PREFIXES if state_dict and all(k.startswith(p) for k in state_dict)), None)
    if prefix is None:
        return state_dict
    return _strip_shared_prefixes({k[len(prefix):]: v for k, v in state_dict.items()})


def _block_key(stage: str, block: str, conv: str, is_norm: bool, param: str) -> str:
    """The torchvision name of a parameter of conv `conv` ("1".."3" or "shortcut") of block `block` of `resN`."""
    if conv == "shortcut":
        module = "downsample.1" if is_norm else "downsample.0"
    else:
        module = f"bn{conv}" if is_norm else f"conv{conv}"
    return f"layer{int(stage) - 1}.{block}.{module}.{param}"


def _rename_torchvision(key: str) -> str | None:
    if key.startswith("backbone.body."):
        return key[len("backbone.body."):]
    return None if key.startswith(HEAD_PREFIXES) else key


def _rename_mmpretrain(key: str) -> str | None:
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    if key.startswith(HEAD_PREFIXES):
        return None
    return key.removeprefix("backbone.")


def _rename_detectron2(key: str) -> str | None:
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


def _is_torchvision(state_dict: Mapping) -> bool:
    return any(k in state_dict for k in ("conv1.weight", "backbone.body.conv1.weight"))


FORMATS: tuple[tuple[str, Callable[[Mapping], bool], Callable[[str], str | None]], ...] = (
    ("caffe2", _is_caffe2, _rename_caffe2),
    ("detectron2", _is_detectron2, _rename_detectron2),
    ("mmpretrain", _is_mmpretrain, _rename_mmpretrain),
    ("torchvision", _is_torchvision, _rename_torchvision),
)


def load_weights(
    model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *, strict: bool = True
) -> dict:
    """Loads a checkpoint of any supported format into `model` (torchvision names).

    `num_batches_tracked` is ignored on both sides. The classifier (`model.pretrained_cfg["classifier"]`, default
    "fc") is optional: the checkpoint's is dropped with a warning when the model has none or its shape differs, and
    a checkpoint without one leaves the model's as initialised; either way the model keeps its fresh classifier.

    Args:
        model: The model to fill, changed in place.
        source: A checkpoint file, or a state dict already read.
        strict: Raise on any other missing, unexpected or shape-mismatched key; when False, load what matches.

    Returns:
        A report: `format`, and the lists `missing` (model keys the checkpoint lacks), `unexpected` (checkpoint keys
        the model lacks), `mismatched` (keys whose shapes differ, not loaded) and `dropped` (the checkpoint's
        classifier keys, not loaded).

    Raises:
        FileNotFoundError: `source` is a path that does not exist.
        ValueError: The file cannot be read or its format is not recognised.
        CheckpointMismatchError: `strict` and the checkpoint does not match; the message names the file and lists,
            for missing, unexpected and shape-mismatched keys, the count and the first keys.
    """
    origin = "the given state dict" if isinstance(source, Mapping) else os.fspath(source)
    raw = source if isinstance(source, Mapping) else read_checkpoint(source)
    try:
        state_dict, format_name = convert_state_dict(raw)
    except ValueError as error:
        raise ValueError(f"cannot load {origin}: {error}") from error
    state_dict = without_batch_counters(state_dict)
    expected = {k: v.shape for k, v in without_batch_counters(model.state_dict()).items()}
    classifier = _classifier_prefixes(model)
    missing = [k for k in expected if k not in state_dict]
    missing_classifier = [k for k in missing if k.startswith(classifier)]
    if missing_classifier:
        logger.warning("%s has no classifier; the model's %s keep their initialisation", origin,
                       ", ".join(missing_classifier))
    dropped = _drop_classifier(state_dict, expected, classifier, origin)
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [k for k in state_dict if k in expected and state_dict[k].shape != expected[k]]
    required_missing = [k for k in missing if not k.startswith(classifier)]
    if strict and (required_missing or unexpected or mismatched):
        shapes = [f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k])})" for k in mismatched]
        raise CheckpointMismatchError(mismatch_message(
            f"checkpoint {origin} ({format_name} format)", required_missing, unexpected, shapes,
            "Pass strict=False to load the matching tensors only."))

    loadable = {k: v for k, v in state_dict.items() if k in expected and k not in mismatched}
    model.load_state_dict(loadable, strict=False)
    logger.info("loaded %d tensors from %s (%s format)", len(loadable), origin, format_name)
    return dict(format=format_name, missing=missing, unexpected=unexpected, mismatched=mismatched, dropped=dropped)


def without_batch_counters(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` without BatchNorm's `num_batches_tracked` counters, which checkpoint and model need not share."""
    return {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "fc"
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{name}." for name in names)


def _drop_classifier(
    state_dict: dict[str, torch.Tensor], expected: Mapping[str, torch.Size], classifier: tuple[str, ...], origin: str
) -> list[str]:
    """Removes the checkpoint's classifier from `state_dict` when the model has none or a differently shaped one."""
    keys = [k for k in state_dict if k.startswith(classifier)]
    has_classifier = any(k.startswith(classifier) for k in expected)
    if not keys or (has_classifier and all(k in expected and state_dict[k].shape == expected[k] for k in keys)):
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
    for kind, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        listed = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        lines.append(f"  {len(keys)} {kind}" + (f": {listed}" if keys else ""))
    lines.append(hint)
    return "\n".join(lines)
