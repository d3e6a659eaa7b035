"""RoIAlign with torchvision's semantics, faster on CPU for training: a row gather vectorised over channels, forward
and backward.

torchvision's CPU kernel loops over RoIs, channels, bins and samples one scalar at a time, and its backward scatters
one scalar at a time, recomputing every sample's weights for every channel. Here every bin's 4 * sampling_ratio**2
(pixel, weight) pairs, as torchvision computes them (samples outside [-1, H] x [-1, W] weigh 0, the others clamped to
the map), are built at once for all RoIs; one `embedding_bag` sums the weighted pixel rows of the map viewed
channels-last as (N*H*W, C). The backward is the transposed bag: the pairs sorted by pixel, each pixel's gradient row
one bag of weighted output-gradient rows.

Calls that need the map's gradient (training) run here, on CPU float32/float64 maps with a fixed sampling ratio,
where that is faster: a map that is not channels-last costs a transposed copy, which few samples on a large map do
not pay back. Inference runs here on channels-last maps, which only a detector's fast path makes
(`heads.set_fast_inference`): the bag sums in another order (pooled values differ by about 1e-7 relative, which box
decoding can amplify past 1e-5), so the exact path (NCHW maps) keeps torchvision's kernel and its detections bit for
bit. Everything else goes to `torchvision.ops.roi_align`. As in torchvision, the boxes get no gradient.
"""
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair
from torchvision.ops.poolers import LevelMapper

from backbones.capabilities import private_symbol
from backbones.memory_format import is_channels_last

from .pyramid_scales import pyramid_scales

_setup_scales = private_symbol("torchvision.ops.poolers", "_setup_scales", pyramid_scales)

DTYPES = (torch.float32, torch.float64)
# Below this many samples per map pixel, transposing a map that is not channels-last costs more than it saves:
# forward and backward break even between 0.25 and 0.5 on 2 AVX2 cores (1 or 2 threads, up to R50's P2 maps).
MIN_SAMPLES_PER_PIXEL = 0.4


class _WeightedRowSum(torch.autograd.Function):
    """out[b] = sum_k weights[b, k] * rows[index[b, k]]; gradient for `rows` only."""

    @staticmethod
    def forward(ctx, rows: Tensor, index: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(index, weights)
        ctx.num_rows = rows.shape[0]
        return F.embedding_bag(index, rows, per_sample_weights=weights, mode="sum")

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        index, weights = ctx.saved_tensors
        pixels, order = index.flatten().sort(stable=True)
        counts = torch.bincount(pixels, minlength=ctx.num_rows)
        offsets = counts.cumsum(0) - counts
        bins = torch.div(order, index.shape[1], rounding_mode="floor")
        grad_rows = F.embedding_bag(bins, grad.contiguous(), offsets, per_sample_weights=weights.flatten()[order],
                                    mode="sum")
        return grad_rows, None, None


def _as_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    """Tensor[K, 5] (batch index, x1, y1, x2, y2) from itself or from one Tensor[L, 4] per image."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes as one tensor must be [K, 5], got {list(boxes.shape)}")
        return boxes
    return _rois_of_images(boxes)


def _rois_of_images(boxes: list[Tensor]) -> Tensor:
    """Tensor[K, 5] (batch index, x1, y1, x2, y2) from one Tensor[L, 4] per image."""
    return torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])


def _selected_maps(x: dict[str, Tensor], names: list[str]) -> list[Tensor]:
    """The maps of `x` named in `names`, in the order of `x`."""
    maps: list[Tensor] = []
    for name, feature in x.items():
        if name in names:
            maps.append(feature)
    return maps


def _axis_samples(start: Tensor, length: Tensor, bins: int, sampling_ratio: int, size: int) -> tuple[Tensor, Tensor]:
    """Along one axis of a map of `size` pixels: the two neighbouring pixels of every sample and their weights.

    A sample outside [-1, size] (or NaN) weighs 0 on both neighbours; the others are clamped to the map.

    Returns:
        The pixels (int64) and their weights, each [K, bins, sampling_ratio, 2] (lower and upper neighbour).
    """
    sample = torch.arange(bins * sampling_ratio, device=start.device)
    bin_index = torch.div(sample, sampling_ratio, rounding_mode="floor")
    in_bin = (sample - bin_index * sampling_ratio).to(start.dtype)
    bin_size = (length / bins)[:, None]
    # torchvision's order of operations, so that samples land on the same side of pixel boundaries
    position = start[:, None] + bin_index.to(start.dtype) * bin_size + (in_bin + 0.5) * bin_size / sampling_ratio
    inside = (position >= -1) & (position <= size)
    position = torch.where(inside, position, 0).clamp(min=0)
    # past the last pixel both neighbours are that pixel: the weights still sum to 1 on it, as torchvision's do
    low = position.long().clamp(max=size - 1)
    high_weight = torch.where(inside, position - low, 0)
    low_weight = torch.where(inside, 1 - high_weight, 0)
    shape = (len(start), bins, sampling_ratio, 2)
    pixels = torch.stack([low, (low + 1).clamp(max=size - 1)], dim=-1).view(shape)
    return pixels, torch.stack([low_weight, high_weight], dim=-1).view(shape)


def _pooled_bins(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                 sampling_ratio: int, aligned: bool) -> Tensor:
    """RoIAlign of a CPU float map, as a [K, C, out_h, out_w] view of channels-last [K, out_h, out_w, C] rows."""
    n, channels, height, width = input.shape
    out_h, out_w = output_size
    rois = rois.detach().to(input.dtype)
    corners = rois[:, 1:] * spatial_scale - (0.5 if aligned else 0.0)
    roi_w, roi_h = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
    if not aligned:  # malformed RoIs become 1x1
        roi_w, roi_h = roi_w.clamp(min=1), roi_h.clamp(min=1)
    y, y_weights = _axis_samples(corners[:, 1], roi_h, out_h, sampling_ratio, height)
    x, x_weights = _axis_samples(corners[:, 0], roi_w, out_w, sampling_ratio, width)
    # every bin's pairs ordered (y sample, y neighbour, x sample, x neighbour): [K, out_h, out_w, sr, 2, sr, 2]
    index_dtype = torch.int32 if n * height * width < 2**31 else torch.int64
    rows = ((rois[:, 0].long() * height)[:, None, None, None] + y) * width
    index = rows.to(index_dtype)[:, :, None, :, :, None, None] + x.to(index_dtype)[:, None, :, None, None]
    weights = (y_weights / sampling_ratio**2)[:, :, None, :, :, None, None] * x_weights[:, None, :, None, None]
    pixels = input.permute(0, 2, 3, 1).reshape(n * height * width, channels)
    pairs = 4 * sampling_ratio**2
    pooled = _WeightedRowSum.apply(pixels, index.view(-1, pairs), weights.view(-1, pairs))
    return pooled.view(len(rois), out_h, out_w, channels).permute(0, 3, 1, 2)


def _faster_here(input: Tensor, rois: Tensor, output_size: tuple[int, int], sampling_ratio: int) -> bool:
    """Whether `_pooled_bins` handles this call, and faster than torchvision: one that needs the map's gradient, or
    a channels-last map (in inference these come only from a detector's fast path, `heads.set_fast_inference`)."""
    if not (input.device.type == "cpu" and input.dim() == 4 and input.dtype in DTYPES and sampling_ratio > 0):
        return False
    channels_last = is_channels_last(input)
    if not (torch.is_grad_enabled() and input.requires_grad):
        return channels_last
    n, _, height, width = input.shape
    samples = len(rois) * output_size[0] * output_size[1] * sampling_ratio**2
    return channels_last or samples >= MIN_SAMPLES_PER_PIXEL * n * height * width


def _roi_align(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
               aligned: bool) -> Tensor:
    """`_pooled_bins` where it is faster, torchvision's kernel elsewhere; the result may be a channels-last view."""
    if _faster_here(input, rois, output_size, sampling_ratio):
        return _pooled_bins(input, rois, output_size, spatial_scale, sampling_ratio, aligned)
    return torchvision.ops.roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)


def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """`torchvision.ops.roi_align`, faster where `input` needs its gradient (CPU float maps, `sampling_ratio` > 0).

    Args:
        input: [N, C, H, W] maps.
        boxes: [K, 5] (batch index, x1, y1, x2, y2), or one [L, 4] tensor of (x1, y1, x2, y2) per image.
        output_size: bins (height, width), or one number for both.
        spatial_scale: map pixels per box unit.
        sampling_ratio: samples per bin along each axis; <= 0 adapts it to each RoI (torchvision's kernel).
        aligned: shift the boxes by -0.5 pixel (Detectron2's RoIAlignV2).

    Returns:
        [K, C, out_h, out_w] pooled RoIs.
    """
    return _roi_align(input, _as_rois(boxes), _pair(output_size), spatial_scale, sampling_ratio, aligned).contiguous()


def _scripted_levels(features: list[Tensor], boxes: list[Tensor], output_size: list[int], sampling_ratio: int,
                     scales: list[float] | None, mapper: LevelMapper | None, aligned: bool) -> Tensor:
    """torchvision's (private) `_multiscale_roi_align` as it runs scripted, with an `aligned` option."""
    if scales is None or mapper is None:
        raise ValueError("scales and mapper should not be None")
    rois = _rois_of_images(boxes)
    if len(features) == 1:
        return torchvision.ops.roi_align(features[0], rois, output_size, scales[0], sampling_ratio, aligned)
    levels = mapper(boxes)
    result = torch.zeros((len(rois), features[0].shape[1], output_size[0], output_size[1]), dtype=features[0].dtype,
                         device=features[0].device)
    for level, (feature, scale) in enumerate(zip(features, scales)):
        in_level = torch.where(levels == level)[0]
        pooled = torchvision.ops.roi_align(feature, rois[in_level], output_size, scale, sampling_ratio, aligned)
        result.index_put_((in_level,), pooled.to(result.dtype))
    return result


class MultiScaleRoIAlign(torchvision.ops.MultiScaleRoIAlign):
    """torchvision's MultiScaleRoIAlign (same arguments, levels and scales, no state) pooling with `roi_align` above.

    Levels that no RoI maps to are skipped rather than pooled empty; every RoI maps to one level.

    Args:
        aligned: shift the boxes by -0.5 pixel before pooling (detectron2's ROIAlignV2, `roi_align(aligned=True)`);
            False (torchvision's detectors) pools as torchvision's MultiScaleRoIAlign does.
        channels_last: return the pooled RoIs channels-last when the maps are (a detector's fast CPU inference),
            the layout `_pooled_bins` makes them in, sparing the packed convolutions of a conv head a conversion; a
            head that flattens the RoIs (torchvision's TwoMLPHead) wants them contiguous (the default). Training
            keeps them contiguous: channels-last RoIs measured no faster there, and the mask head's backward slower
            (2-core AVX2).
    """

    def __init__(self, featmap_names: list[str], output_size: int | tuple[int, int] | list[int], sampling_ratio: int,
                 *, canonical_scale: int = 224, canonical_level: int = 4, channels_last: bool = False,
                 aligned: bool = False):
        super().__init__(featmap_names, output_size, sampling_ratio, canonical_scale=canonical_scale,
                         canonical_level=canonical_level)
        self.channels_last = channels_last
        self.aligned = aligned

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        features = _selected_maps(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(features, image_shapes, self.canonical_scale,
                                                         self.canonical_level)
        if torch.jit.is_scripting():  # torchvision's pooling, what the exact path computes; the rest is eager only
            return _scripted_levels(features, boxes, self.output_size, self.sampling_ratio, self.scales,
                                    self.map_levels, self.aligned)
        layout = torch.channels_last if self._channels_last_output(features[0]) else torch.contiguous_format
        rois = _as_rois(boxes)
        if len(features) == 1:
            pooled = _roi_align(features[0], rois, self.output_size, self.scales[0], self.sampling_ratio, self.aligned)
            return pooled.contiguous(memory_format=layout)
        levels = self.map_levels(boxes)
        result = torch.empty((len(rois), features[0].shape[1], *self.output_size), dtype=features[0].dtype,
                             device=features[0].device, memory_format=layout)
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            in_level = torch.where(levels == level)[0]
            if len(in_level):
                pooled = _roi_align(feature, rois[in_level], self.output_size, scale, self.sampling_ratio,
                                    self.aligned)
                result[in_level] = pooled.to(result.dtype)
        return result

    def _channels_last_output(self, feature: Tensor) -> bool:
        """Channels-last where asked for, on channels-last CPU maps; inference on NCHW maps stays torchvision's to
        the last bit."""
        return self.channels_last and feature.device.type == "cpu" and is_channels_last(feature)
