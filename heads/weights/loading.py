"""Whole-detector checkpoints: ours (a dict with "model"), torchvision's Faster/Mask R-CNN files as they are, and
detectron2's model-zoo Faster/Mask R-CNN (FPN, C4) files, renamed by `heads.weights.detectron2`."""
import logging
import os
from collections.abc import Mapping

import torch
from torch import nn

from backbones import CheckpointError, CheckpointMismatchError, read_checkpoint
from backbones.weights.formats import convert_state_dict, strip_shared_prefixes
from backbones.weights.loading import mismatch_message, note_conversions, tensor_mismatches, without_batch_counters

from .detectron2 import convert_detectron2_detector, is_detectron2_detector
from .state_names import CLASS_LAYERS, renamed_mask_conv

logger = logging.getLogger(__name__)


def load_detector_weights(model: nn.Module, path: str | os.PathLike,
                          state_dict: Mapping[str, torch.Tensor] | None = None) -> dict[str, list[str]]:
    """Loads a whole-detector checkpoint into `model`.

    The file is read with `torch.load(weights_only=True)` (see `backbones.read_checkpoint`); the state dict may be
    wrapped under "model" (our training checkpoints) or "state_dict", and its keys may share a wrapper's prefix
    (`module.` of DDP, `_orig_mod.` of torch.compile; see `backbones.weights.formats.strip_shared_prefixes`). BatchNorm
    batch counters are ignored on both sides, so a checkpoint trained with BatchNorm loads into frozen BatchNorm and
    back. When only the class-dependent predictor layers (`cls_score`, `bbox_pred`, `mask_fcn_logits`) differ in
    shape, they are dropped with a warning and keep their initialisation (fine-tuning on other classes).
    Floating-point tensors of another precision are converted to the model's. A detectron2 detector (its model
    zoo's `.pkl` or its training `.pth`) is renamed and its predictors converted first
    (`heads.weights.detectron2.convert_detectron2_detector`).

    Args:
        model: the detector, changed in place.
        path: the checkpoint file.
        state_dict: its tensors, where already read (`backbones.read_weights`).

    Returns:
        `dropped`: the checkpoint keys not loaded because the number of classes differs.

    Raises:
        CheckpointNotFoundError: `path` does not exist (a FileNotFoundError).
        CheckpointError: the file cannot be read (a ValueError).
        CheckpointMismatchError: the file shares no key with the detector (a classifier or backbone checkpoint: the
            message says to give it as `backbone_weights`), or any other key is missing, unexpected, of another
            shape or not floating-point where the model's is; the message gives the count and the first keys of each
            kind. For a detectron2 detector, also keys of heads we do not build (cascade, keypoint, ...): the message
            says that the file is a detectron2 detector and gives its own key names.
    """
    origin = os.fspath(path)
    checkpoint = strip_shared_prefixes(read_checkpoint(path) if state_dict is None else state_dict)
    if is_detectron2_detector(checkpoint):
        checkpoint = convert_detectron2_detector(checkpoint, model, origin)
    state_dict = without_batch_counters({renamed_mask_conv(k) or k: v for k, v in checkpoint.items()})
    expected = without_batch_counters(model.state_dict())
    if not state_dict.keys() & expected.keys():
        raise CheckpointMismatchError(_not_this_detector(origin, state_dict, expected))
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = tensor_mismatches(state_dict, expected)
    other_classes = [k for k in mismatched if k.startswith(CLASS_LAYERS)
                     and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or len(other_classes) < len(mismatched):
        raise CheckpointMismatchError(mismatch_message(
            f"detector checkpoint {origin}", missing, unexpected, [f"{k} ({d})" for k, d in mismatched.items()],
            "weights= takes a whole detector of the same backbone, neck and heads; "
            "load a backbone checkpoint with backbone_weights= instead."))
    if mismatched:
        logger.warning("%s: the number of classes differs; dropping its %s, which keep their initialisation",
                       origin, ", ".join(mismatched))
    loadable = {k: v for k, v in state_dict.items() if k not in mismatched}
    note_conversions(loadable, expected, origin)
    model.load_state_dict(loadable, strict=False)
    logger.info("loaded %d tensors from %s", len(loadable), origin)
    return dict(dropped=list(mismatched))


def _not_this_detector(origin: str, state_dict: Mapping[str, torch.Tensor],
                       expected: Mapping[str, torch.Tensor]) -> str:
    """Why a checkpoint that shares no key with the detector is not its weights, and what to give instead."""
    found = f"found {', '.join(list(state_dict)[:3])}, ...; expected {', '.join(list(expected)[:2])}, ..."
    try:
        backbone, format_name = convert_state_dict(state_dict)
    except CheckpointError:
        return f"{origin} is not a checkpoint of this detector: it holds none of its keys ({found})"
    kind = "classifier" if "fc.weight" in backbone else "backbone"
    return (f"{origin} is a {kind} checkpoint ({format_name} format), not a whole detector: it holds none of the "
            f"detector's keys ({found}). Give it as the backbone's weights instead: model.backbone_weights={origin} "
            "in a config (backbone_weights= in Python)")
