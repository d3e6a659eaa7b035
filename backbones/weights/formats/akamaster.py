"""akamaster's format: the CIFAR ResNets of akamaster/pytorch_resnet_cifar10 (torchvision names, classifier
`linear`, saved from DataParallel in torch's legacy non-zip format). Their option-A shortcuts put the zero channels on
both sides of the input's, so they load only into models built with `shortcut_pad="center"` (the `akamaster_cifar10`
tags; see `FORMAT_SHORTCUT_PADS`)."""
from collections.abc import Mapping


def is_akamaster(state_dict: Mapping) -> bool:
    return "conv1.weight" in state_dict and "linear.weight" in state_dict


def rename_akamaster(key: str) -> str:
    return "fc." + key[len("linear."):] if key.startswith("linear.") else key
