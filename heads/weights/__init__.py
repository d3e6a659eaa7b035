"""Whole-detector weights: the named ones (`catalog`, as torchvision's weights enums and detectron2's model zoo),
loading a checkpoint of any detector format (`loading`), detectron2's layout renamed to ours (`detectron2`), and the
state-dict key names they share (`state_names`)."""
from .catalog import detector_weights_spec, list_detector_weights, named_weights
from .loading import load_detector_weights

__all__ = ["detector_weights_spec", "list_detector_weights", "load_detector_weights", "named_weights"]
