"""What the installed torch and torchvision offer beyond their public API, looked up once.

The CPU fast paths call oneDNN operators that torch registers privately (`torch.ops.mkldnn`), and a few helpers
that torchvision keeps private. Where one is missing, its caller runs the plain path, or an own function of the same
behaviour, and a one-line note is logged at DEBUG level.
"""
import functools
import importlib
import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)

# the oneDNN operators of the fused and packed convolutions (backbones.fuse, backbones.packed_conv): name, overload
ONEDNN_OPERATORS = (("_convolution_pointwise", "default"), ("_convolution_pointwise", "binary"),
                    ("_convolution_pointwise_", "binary"), ("_reorder_convolution_weight", "default"))


def has_operator(namespace: str, name: str, overload: str = "default") -> bool:
    """Whether torch registers the operator `torch.ops.<namespace>.<name>.<overload>`."""
    try:
        getattr(getattr(getattr(torch.ops, namespace), name), overload)
    except (AttributeError, RuntimeError):
        return False
    return True


@functools.cache
def onednn_convolutions() -> bool:
    """Whether torch is built with oneDNN and has every operator of the fused and packed convolutions; says which
    are missing once, at DEBUG level."""
    if not torch.backends.mkldnn.is_available():
        logger.debug("torch %s is built without oneDNN: convolutions run through F.conv2d", torch.__version__)
        return False
    missing = [f"{name}.{overload}" for name, overload in ONEDNN_OPERATORS
               if not has_operator("mkldnn", name, overload)]
    if missing:
        logger.debug("torch %s lacks torch.ops.mkldnn.%s: convolutions run through F.conv2d", torch.__version__,
                     ", ".join(missing))
    return not missing


def private_symbol(module: str, name: str, fallback: Callable) -> Callable:
    """`module.name` where the installed version has it, otherwise `fallback` (which must behave the same), with a
    note at DEBUG level."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        logger.debug("%s.%s is missing: %s.%s runs instead", module, name, fallback.__module__,
                     fallback.__qualname__)
        return fallback
