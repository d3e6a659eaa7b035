"""detectron2's formats, renamed to torchvision's names.

- "detectron2": `stem.conv1`, `res2.0.conv1.norm`, `res2.0.shortcut`, `linear`; detectors keep the backbone under
  `backbone.bottom_up.` (FPN) or `backbone.` with res5 under `roi_heads.res5.` (C4).
- "caffe2": the MSRA ImageNet weights as Detectron ships them (`conv1_w`, `res_conv1_bn_s`, `res2_0_branch2a_w`, ...).
  Their BatchNorm is a frozen affine `s * x + b`; it becomes running mean 0 and running variance 1 - eps, so that a
  BatchNorm with eps 1e-5 computes exactly that affine. detectron2's own ImageNet files (MSRA R-50.pkl, FAIR
  X-101-32x8d.pkl) keep the BatchNorm unfused (`_bn_gamma`, `_bn_beta`, `_bn_running_mean`, `_bn_running_var`, or
  Caffe2's `_bn_s`, `_bn_b`, `_bn_rm`, `_bn_riv`): its statistics load as they are. Grouped (ResNeXt) weights are
  stored as PyTorch stores them, (out, in / groups, 3, 3).
"""
import re
from collections.abc import Mapping

import torch

from .heads import HEAD_PREFIXES

BN_EPS = 1e-5
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


def _block_key(stage: str, block: str, conv: str, is_norm: bool, param: str) -> str:
    """The torchvision name of a parameter of conv `conv` ("1".."3" or "shortcut") of block `block` of `resN`."""
    if conv == "shortcut":
        module = "downsample.1" if is_norm else "downsample.0"
    else:
        module = f"bn{conv}" if is_norm else f"conv{conv}"
    return f"layer{int(stage) - 1}.{block}.{module}.{param}"


def is_detectron2(state_dict: Mapping) -> bool:
    stems = ("stem.conv1.weight", "backbone.stem.conv1.weight", "backbone.bottom_up.stem.conv1.weight")
    return any(k in state_dict for k in stems)


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


def is_caffe2(state_dict: Mapping) -> bool:
    return "conv1_w" in state_dict or any(CAFFE2_BLOCK.fullmatch(k) for k in state_dict)


def rename_caffe2(key: str) -> str | None:
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


def add_affine_statistics(state_dict: dict[str, torch.Tensor]) -> None:
    """Gives every Caffe2 affine norm (1-D weight and bias) running statistics that make BatchNorm that affine."""
    norms = [k.removesuffix(".weight") for k, v in state_dict.items() if k.endswith(".weight") and v.dim() == 1]
    for norm in norms:
        weight = state_dict[f"{norm}.weight"]
        state_dict.setdefault(f"{norm}.running_mean", torch.zeros_like(weight))
        state_dict.setdefault(f"{norm}.running_var", torch.full_like(weight, 1.0 - BN_EPS))
