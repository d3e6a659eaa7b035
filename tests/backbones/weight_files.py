"""Random models, and their state dicts written in the MSRA Caffe2 names, for the checkpoint tests and the tools'
tests."""
import os
import pickle

import numpy as np
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from backbones.weights.formats.detectron2 import BN_EPS

C2_MODULES = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "bn1": "branch2a_bn",
              "bn2": "branch2b_bn", "bn3": "branch2c_bn", "downsample.0": "branch1", "downsample.1": "branch1_bn"}


def randomised(model: nn.Module) -> nn.Module:
    """Gives every BatchNorm random weights and statistics, so that a loader dropping any of them is caught."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.2, generator=generator)
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


def split_key(key: str) -> tuple[str, str, str]:
    """`layer1.0.downsample.1.weight` -> ("res2_0" stage and block, "downsample.1" module, "weight" parameter)."""
    module, param = key.rsplit(".", 1)
    layer, block, name = module.split(".", 2)
    return f"{int(layer.removeprefix('layer')) + 1}_{block}", name, param


def to_caffe2(state_dict: dict[str, torch.Tensor], classifier: str = "pred") -> dict[str, np.ndarray]:
    """Renames a torchvision state dict to the MSRA Caffe2 names, folding every BatchNorm into its affine s, b."""
    blobs = {f"{classifier}_w": state_dict["fc.weight"], f"{classifier}_b": state_dict["fc.bias"],
             "conv1_w": state_dict["conv1.weight"]}
    norms = {"bn1": "res_conv1_bn"}
    for key in state_dict:
        if key.startswith("layer") and key.endswith(".weight"):
            stage_block, module, _ = split_key(key)
            name = f"res{stage_block}_{C2_MODULES[module]}"
            if name.endswith("_bn"):
                norms[key.removesuffix(".weight")] = name
            else:
                blobs[name + "_w"] = state_dict[key]
    for module, name in norms.items():
        scale = state_dict[f"{module}.weight"] / torch.sqrt(state_dict[f"{module}.running_var"] + BN_EPS)
        blobs[name + "_s"] = scale
        blobs[name + "_b"] = state_dict[f"{module}.bias"] - state_dict[f"{module}.running_mean"] * scale
    return {k: v.detach().numpy().copy() for k, v in blobs.items()}


def save_pickle(obj: object, path: os.PathLike, protocol: int = pickle.HIGHEST_PROTOCOL) -> str:
    with open(path, "wb") as file:
        pickle.dump(obj, file, protocol=protocol)
    return str(path)
