"""Operators of the detectors: a RoIAlign with torchvision's semantics that is faster on CPU (`roi_align`), and the
pyramid scales it infers as torchvision does (`pyramid_scales`)."""
