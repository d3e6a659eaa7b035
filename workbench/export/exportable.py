"""The copy of a model that gets exported: on the CPU, in eval mode, with our CPU speed-ups off.

Our eager-only speed-ups have no TorchScript or ONNX form: BatchNorm folded into the convolutions with oneDNN
post-ops (`backbones.FeatureExtractor.set_fused`) and packed channels-last convolutions (`backbones.packed_conv`),
which `heads.set_fast_inference(model, False)` turns off (it handles any module holding them, backbones included).

`heads.ops.roi_align.MultiScaleRoIAlign` pools with torchvision's kernel whenever the maps are NCHW and need no
gradient (which is the case here), but its eager forward loops over the pyramid levels with Python conditions
(`if len(in_level)`) that a trace would freeze, and writes the levels into one tensor by index, where torchvision's
pooling merges them with `_onnx_merge_levels` when it is traced. The copy therefore holds torchvision's own
`MultiScaleRoIAlign` with the same arguments (the subclass keeps no other state), so that the ONNX trace records
torchvision's exportable pooling; TorchScript compiles that same pooling in either class.

Scripted and traced, torchvision's resizing of detector inputs computes the new size in float32 where eager PyTorch
computes it in float64, and rounds some sizes down by a pixel (a 640x480 image at min_size 800: 1066x799 instead of
1066x800; 97x97 at min_size 128: 127x127), which changes the detections. The copy's transform gives the exported
file eager's sizes: `heads.transform.RCNNTransform` does so when scripted, and the copy's `TracedEagerSizedTransform`
when traced; eager calls are unchanged.
"""
import copy

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.onnx.operators import shape_as_tensor

import backbones
import heads
from heads.ops.roi_align import MultiScaleRoIAlign
from heads.transform import RCNNTransform


class TracedEagerSizedTransform(RCNNTransform):
    """`RCNNTransform` whose traced resize (ONNX) computes eager's size from the image's dynamic shape.

    The graph computes `floor(side * scale)` in float64 with eager's operations and hands the interpolation the
    per-side factors `(size + 0.5) / side`, from which the exported graph's float32 `floor(side * factor)` recovers
    that size exactly; ONNX Resize then samples by the ratio of the sizes, as eager mode does. For tracing only
    (never scripted).
    """

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor] | None]:
        if not torch.jit.is_tracing() or target is not None or self.fixed_size is not None:
            return super().resize(image, target)
        shape = shape_as_tensor(image)[-2:].to(torch.float64)
        # eager's scale, min(short side / min(h, w), max size / max(h, w)), as divisions of float64 vectors: the
        # exporter turns a number divided by a tensor into a reciprocal times the number, and computes 0-dim
        # constants in float32, both of which round differently (128 * (1 / 97) * 97 < 128)
        limits = torch.tensor([float(self.min_size[-1]), float(self.max_size)], dtype=torch.float64)
        scale = (limits / torch.stack([shape.min(), shape.max()])).min()
        factors = ((torch.floor(shape * scale) + 0.5) / shape).to(torch.float32)
        # tensors for floats, as torchvision's traced resize passes them: the graph keeps them dynamic
        image = F.interpolate(image[None], scale_factor=(factors[0], factors[1]), mode="bilinear",
                              recompute_scale_factor=True, align_corners=False)[0]
        return image, target


def torchvision_pooling(module: MultiScaleRoIAlign) -> torchvision.ops.MultiScaleRoIAlign:
    """torchvision's MultiScaleRoIAlign with the arguments of our subclass."""
    return torchvision.ops.MultiScaleRoIAlign(module.featmap_names, module.output_size, module.sampling_ratio,
                                              canonical_scale=module.canonical_scale,
                                              canonical_level=module.canonical_level)


def exportable_copy(model: nn.Module, fmt: str = "torchscript") -> nn.Module:
    """A copy of `model` (a backbone, a classifier or a detector) ready to script or trace; `model` is unchanged.

    Args:
        fmt: "torchscript" (the copy will be scripted) or "onnx" (traced).

    Returns:
        The copy, on the CPU and in eval mode, with BatchNorm folding and packed convolutions off, no cached weights,
        torchvision's RoI pooling in place of ours, and (detectors) a transform that resizes to eager's sizes.
    """
    exported = copy.deepcopy(model).cpu().eval()
    heads.set_fast_inference(exported, False)
    backbones.clear_weight_caches(exported)
    for parent in list(exported.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MultiScaleRoIAlign) and not child.aligned:  # torchvision's has no aligned option
                setattr(parent, name, torchvision_pooling(child))
    if fmt == "onnx" and type(getattr(exported, "transform", None)) is RCNNTransform:  # the subclass adds no state
        exported.transform.__class__ = TracedEagerSizedTransform
    return exported
