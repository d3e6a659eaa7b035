"""Folding inference-time BatchNorm into the preceding convolution, for faster evaluation."""
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d

# (convolution, norm) pairs by attribute name, in the stem and in every block
CONV_NORM_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def _fold(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation, groups=conv.groups, bias=True).to(conv.weight.device)
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps,
                                        norm.weight, norm.bias)
    fused.weight.data.copy_(weight)
    fused.bias.data.copy_(bias)
    fused.weight.requires_grad_(False)
    fused.bias.requires_grad_(False)
    return fused


def _foldable(norm: nn.Module | None) -> bool:
    return isinstance(norm, FrozenBatchNorm2d) or (isinstance(norm, nn.BatchNorm2d) and not norm.training)


@torch.no_grad()
def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Folds every frozen (or eval-mode) BatchNorm into its convolution and replaces it by nn.Identity.

    For inference only: the result no longer trains its BatchNorm. Works on ResNets, their features-only wrappers
    and anything holding them (an FPN backbone, a detector).

    Returns:
        `model`, changed in place.
    """
    for module in list(model.modules()):
        for conv_name, norm_name in CONV_NORM_PAIRS:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if isinstance(conv, nn.Conv2d) and _foldable(norm):
                setattr(module, conv_name, _fold(conv, norm))
                setattr(module, norm_name, nn.Identity())
        downsample = getattr(module, "downsample", None)
        if isinstance(downsample, nn.Sequential) and len(downsample) == 2 and _foldable(downsample[1]):
            downsample[0] = _fold(downsample[0], downsample[1])
            downsample[1] = nn.Identity()
    return model
