"""Key names of a detector's state dict that the checkpoint loaders share (`heads.weights.loading`,
`heads.weights.detectron2`, the class-count check of `workbench.tasks.detection`)."""
import re

# The class-dependent layers: their shapes follow the number of classes.
CLASS_LAYERS = ("roi_heads.box_predictor.cls_score.", "roi_heads.box_predictor.bbox_pred.",
                "roi_heads.mask_predictor.mask_fcn_logits.")
CLASS_SCORES = "roi_heads.box_predictor.cls_score.weight"  # one row per class output, in every detector format
# The mask head's convs under their older name: torchvision's released Mask R-CNN file and detectron2 both call them
# `mask_fcn1..4`; torchvision's MaskRCNNHeads now names them `0..3` (each a Conv2dNormActivation, its conv `.0`).
MASK_CONV = re.compile(r"roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)")


def renamed_mask_conv(key: str) -> str | None:
    """MaskRCNNHeads' name of a `mask_fcn{k}` tensor key, or None when `key` is none."""
    match = MASK_CONV.fullmatch(key)
    return f"roi_heads.mask_head.{int(match.group(1)) - 1}.0.{match.group(2)}" if match else None
