"""Faster R-CNN and Mask R-CNN (FPN and C4) on any registered backbone, built from torchvision parts.

`num_classes` counts the background, as in torchvision: 81 for COCO's 80 categories.
"""
from .detector_weights import detector_weights_spec, list_detector_weights
from .detectors import build_detector, faster_rcnn, mask_rcnn, set_fast_inference, valid_options
from .transform import RCNNTransform
from .weights import load_detector_weights

__all__ = ["RCNNTransform", "build_detector", "detector_weights_spec", "faster_rcnn", "list_detector_weights",
           "load_detector_weights", "mask_rcnn", "set_fast_inference", "valid_options"]
