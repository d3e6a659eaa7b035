"""Faster R-CNN and Mask R-CNN (FPN and C4) on any registered backbone, built from torchvision parts.

`detectors` assembles the whole detectors, `transform` is their input transform, `necks` holds the parts each neck
builds (FPN, C4), `ops` the RoIAlign, `weights` the named detector weights and the checkpoint loading and converters;
`box_loss` and `head_init` are the heads' losses and initial weights. `num_classes` counts the background, as in
torchvision: 81 for COCO's 80 categories.
"""
from backbones.old_paths import register_moved_modules

from .detectors import build_detector, faster_rcnn, mask_rcnn, set_fast_inference, valid_options
from .transform import RCNNTransform
from .weights import detector_weights_spec, list_detector_weights, load_detector_weights

__all__ = ["RCNNTransform", "build_detector", "detector_weights_spec", "faster_rcnn", "list_detector_weights",
           "load_detector_weights", "mask_rcnn", "set_fast_inference", "valid_options"]

# The modules' paths before the layout of necks/, ops/ and weights/ (deprecated, for one release).
register_moved_modules({
    "heads.fpn_heads": "heads.necks.fpn",
    "heads.c4": "heads.necks.c4",
    "heads.roi_align": "heads.ops.roi_align",
    "heads.pyramid_scales": "heads.ops.pyramid_scales",
    "heads.detector_weights": "heads.weights.catalog",
    "heads.detectron2_weights": "heads.weights.detectron2",
    "heads.state_names": "heads.weights.state_names",
})
