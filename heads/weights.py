"""Whole-detector checkpoints: ours (a dict with "model") and torchvision's Faster/Mask R-CNN files as they are."""
import logging
import os
import re

from torch import nn

from backbones import CheckpointMismatchError, read_checkpoint
from backbones.checkpoint import mismatch_message, without_batch_counters

logger = logging.getLogger(__name__)

# Layers whose shapes depend on the number of classes; a checkpoint's are dropped when that number differs.
PREDICTOR_PREFIXES = (
    "roi_heads.box_predictor.cls_score.", "roi_heads.box_predictor.bbox_pred.",
    "roi_heads.mask_predictor.mask_fcn_logits.",
)
# torchvision's released Mask R-CNN file names its mask head convs `mask_fcn1..4`; MaskRCNNHeads now calls them `0..3`.
LEGACY_MASK_CONV = re.compile(r"roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)")


def _modern_name(key: str) -> str:
    match = LEGACY_MASK_CONV.fullmatch(key)
    return f"roi_heads.mask_head.{int(match.group(1)) - 1}.0.{match.group(2)}" if match else key


def load_detector_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Loads a whole-detector checkpoint into `model`.

    The file is read with `torch.load(weights_only=True)` (see `backbones.read_checkpoint`); the state dict may be
    wrapped under "model" (our training checkpoints) or "state_dict". BatchNorm batch counters are ignored on both
    sides, so a checkpoint trained with BatchNorm loads into frozen BatchNorm and back. When only the class-dependent
    predictor layers (`cls_score`, `bbox_pred`, `mask_fcn_logits`) differ in shape, they are dropped with a warning
    and keep their initialisation (fine-tuning on other classes).

    Args:
        model: the detector, changed in place.
        path: the checkpoint file.

    Returns:
        `dropped`: the checkpoint keys not loaded because the number of classes differs.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file cannot be read.
        CheckpointMismatchError: any other key is missing, unexpected or of another shape; the message gives the
            count and the first keys of each kind.
    """
    origin = os.fspath(path)
    state_dict = without_batch_counters({_modern_name(k): v for k, v in read_checkpoint(path).items()})
    expected = {k: v.shape for k, v in without_batch_counters(model.state_dict()).items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [k for k in state_dict if k in expected and state_dict[k].shape != expected[k]]
    if missing or unexpected or any(not k.startswith(PREDICTOR_PREFIXES) for k in mismatched):
        shapes = [f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k])})" for k in mismatched]
        raise CheckpointMismatchError(mismatch_message(
            f"detector checkpoint {origin}", missing, unexpected, shapes,
            "weights= takes a whole detector of the same backbone, neck and heads; "
            "load a backbone checkpoint with backbone_weights= instead."))
    if mismatched:
        logger.warning("%s: the number of classes differs; dropping its %s, which keep their initialisation",
                       origin, ", ".join(mismatched))
    loadable = {k: v for k, v in state_dict.items() if k not in mismatched}
    model.load_state_dict(loadable, strict=False)
    logger.info("loaded %d tensors from %s", len(loadable), origin)
    return dict(dropped=mismatched)
