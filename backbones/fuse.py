"""Folding inference-time BatchNorm into the preceding convolution, for faster evaluation and frozen stages.

Two ways in:
- `fuse_batchnorm(model)` rewrites a model in place for inference only (the BatchNorm modules are gone).
- `FusedStages`, which `FeatureExtractor` uses by default, leaves the modules and the state dict as they are and runs
  the blocks whose BatchNorm uses running statistics (frozen BN, or BN in eval mode) with the BatchNorm folded into
  the convolutions:
  - where nothing needs gradients (eval, or frozen stages while training), from folded weights it caches and
    rebuilds whenever a weight or statistic changes; on CPU with oneDNN the cached weights are packed once for the
    input's shape, and ReLU and the residual addition run inside the convolution (oneDNN post-ops) on
    channels-last maps; a torch without those operators runs the folded weights through F.conv2d;
  - where gradients are needed, the modules run as they are (folding on the fly, weight x scale, measured no
    faster on a 2-core AVX2 CPU).
  Outputs agree with the unfolded path within float rounding (about 1e-6 relative).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d

from .blocks import BasicBlock, Bottleneck
from .capabilities import onednn_convolutions
from .memory_format import is_channels_last

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


def foldable(norm: nn.Module | None) -> bool:
    """Whether `norm` is an affine map fixed by its statistics: frozen BN, or BatchNorm in eval mode with running
    statistics."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return (isinstance(norm, nn.modules.batchnorm._BatchNorm) and not norm.training
            and norm.running_mean is not None and norm.running_var is not None)


_foldable = foldable


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


def folded_weight_and_bias(conv: nn.Conv2d, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one convolution equal to `norm(conv(x))` for a foldable `norm`; differentiable in the
    convolution's weight and the norm's affine parameters."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1))).to(conv.weight.dtype)
    bias = -norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    if norm.bias is not None:
        bias = bias + norm.bias
    return weight, bias.to(conv.weight.dtype)


def _block_pairs(block: nn.Module) -> list[tuple[nn.Conv2d, nn.Module]] | None:
    """The (convolution, norm) chain of one of our residual blocks, or None for any other module."""
    if isinstance(block, Bottleneck):
        names = CONV_NORM_PAIRS
    elif isinstance(block, BasicBlock):
        names = CONV_NORM_PAIRS[:2]
    else:
        return None
    pairs = [(getattr(block, c), getattr(block, n)) for c, n in names]
    if not all(type(c) is nn.Conv2d and c.padding_mode == "zeros" and isinstance(c.padding, tuple) for c, _ in pairs):
        return None
    return pairs


def _projection(block: nn.Module) -> tuple[nn.Conv2d, nn.Module] | None:
    downsample = block.downsample
    if isinstance(downsample, nn.Sequential) and len(downsample) == 2 and type(downsample[0]) is nn.Conv2d:
        return downsample[0], downsample[1]
    return None


def onednn_fusion_available(x: torch.Tensor) -> bool:
    """Whether convolution + bias + ReLU / + residual + ReLU can run as one oneDNN call on `x` (float32 CPU): oneDNN
    is on and torch has its operators (`backbones.capabilities.onednn_convolutions`)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled("cpu") and onednn_convolutions())


def version(tensor: torch.Tensor) -> int:
    """The tensor's version counter, which in-place changes bump; -1 for inference tensors, which have none."""
    return -1 if tensor.is_inference() else tensor._version


def pack_weight(weight: torch.Tensor, padding, stride, dilation, groups: int, input_shape) -> torch.Tensor:
    """`weight` reordered into the blocked layout oneDNN picks for a convolution of an input of `input_shape`."""
    return torch.ops.mkldnn._reorder_convolution_weight(weight.contiguous(), list(padding), list(stride),
                                                        list(dilation), groups, list(input_shape))


class FusedStages:
    """Runs ResNet stems and blocks with BatchNorm folded into the convolutions; see the module docstring.

    Holds the folded weights of the convolutions it ran without gradients, keyed by the convolution's name and
    checked against the identity and version counter of every tensor they were folded from.

    Args:
        channels_last: None (default): CPU float32 maps channels-last (see `to_preferred_format`), others as they
            come; True / False: every map channels-last / contiguous.
    """

    def __init__(self, channels_last: bool | None = None):
        self.channels_last = channels_last
        self._cache: dict[str, tuple] = {}

    def clear(self) -> None:
        """Drops the cached folded weights (they are rebuilt on the next forward that needs them)."""
        self._cache.clear()

    def __getstate__(self) -> dict:
        return {"channels_last": self.channels_last, "_cache": {}}

    @property
    def cached_bytes(self) -> int:
        """Memory held by the cached folded weights."""
        return sum(entry["weight"].numel() * entry["weight"].element_size() + entry["bias"].numel() *
                   entry["bias"].element_size() for entry in self._cache.values())

    def _folded(self, name: str, conv: nn.Conv2d, norm: nn.Module, x: torch.Tensor, packed: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The folded weight and bias of `conv` and `norm` for input `x`, from the cache when nothing changed.

        `packed`: the weight reordered once into the blocked layout oneDNN picks for `x`'s shape, which it would
        otherwise redo on every call (half the time of the 7x7 convolutions of a single image). One layout is kept
        per convolution: a new input shape repacks.
        """
        tensors = (conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var)
        key = (id(conv), id(norm), norm.eps) + tuple(
            (t.data_ptr(), version(t)) for t in tensors if t is not None)
        layout = ("packed", tuple(x.shape)) if packed else ("plain", is_channels_last(x))
        entry = self._cache.get(name)
        if entry is None or entry["key"] != key or entry["layout"] != layout:
            with torch.no_grad():
                weight, bias = folded_weight_and_bias(conv, norm)
                if packed:
                    weight = pack_weight(weight, conv.padding, conv.stride, conv.dilation, conv.groups, x.shape)
                else:  # in the input's memory format: the convolution would otherwise convert it on every call
                    weight = weight.contiguous(memory_format=torch.channels_last if layout[1] and weight.dim() == 4
                                               else torch.contiguous_format)
            entry = self._cache[name] = {"key": key, "layout": layout, "weight": weight, "bias": bias.contiguous()}
        return entry["weight"], entry["bias"]

    # -- inference (no gradients): cached folded weights, oneDNN post-ops where available -------------------------

    @staticmethod
    def _onednn_wins(conv: nn.Conv2d, x: torch.Tensor) -> bool:
        """oneDNN with post-ops, except where torch itself would not pick oneDNN: 1x1 stride-1 convolutions of small
        NCHW batches on one thread run faster as a plain matrix product (torch's choice; on channels-last maps that
        product would first copy them to NCHW)."""
        pointwise = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.dilation == (1, 1)
        return not pointwise or x.shape[0] >= 16 or torch.get_num_threads() > 1 or is_channels_last(x)

    def _conv(self, name: str, conv: nn.Conv2d, norm: nn.Module, x: torch.Tensor, relu: bool,
              residual: torch.Tensor | None = None, residual_owned: bool = False, onednn: bool = False
              ) -> torch.Tensor:
        """relu?(conv(x) folded with norm (+ residual)); `residual_owned`: it may be overwritten."""
        if onednn and self._onednn_wins(conv, x):
            weight, bias = self._folded(name, conv, norm, x, packed=True)
            args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
            if residual is None:
                return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *args, "relu" if relu else "none",
                                                               [], "")
            # with a packed weight oneDNN writes channels-last maps
            if not residual.is_contiguous(memory_format=torch.channels_last):
                residual, residual_owned = residual.contiguous(memory_format=torch.channels_last), True
            unary = "relu" if relu else None
            if residual_owned:  # the sum post-op writes into the residual's memory
                return torch.ops.mkldnn._convolution_pointwise_.binary(residual, x, weight, bias, *args, "add", 1.0,
                                                                       unary, [], "")
            return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, weight, bias, *args, "add", 1.0,
                                                                  unary, [], "")
        weight, bias = self._folded(name, conv, norm, x, packed=False)
        out = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        if residual is not None:
            out += residual
        return F.relu_(out) if relu else out

    def _block_no_grad(self, name: str, block: nn.Module, pairs: list, x: torch.Tensor, x_owned: bool,
                       onednn: bool) -> torch.Tensor:
        out = x
        for i, (conv, norm) in enumerate(pairs[:-1]):
            out = self._conv(f"{name}.{i}", conv, norm, out, relu=True, onednn=onednn)
        shortcut, owned = None, False
        if block.residual:
            projection = _projection(block)
            if projection is not None and foldable(projection[1]):
                shortcut, owned = self._conv(f"{name}.down", *projection, x, relu=False, onednn=onednn), True
            elif block.downsample is not None:
                shortcut, owned = block.downsample(x), False
            else:
                shortcut, owned = x, x_owned
        return self._conv(f"{name}.{len(pairs) - 1}", *pairs[-1], out, relu=True, residual=shortcut,
                          residual_owned=owned, onednn=onednn)

    # -- entry points ----------------------------------------------------------------------------------------------

    def to_preferred_format(self, x: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """`x` in the memory format the next stage runs fastest in (`grad`: that stage records gradients).

        By default (channels_last=None) CPU float32 maps go channels-last where oneDNN runs them with packed weights
        (no gradients; measured on AVX2: the stem 2x faster than in NCHW, every stage at least as fast) and NCHW
        where gradients are recorded (backward in channels-last measured up to 10% slower at batch 1). Elsewhere
        (CUDA) maps stay in the format they come in.
        """
        if x.dim() != 4:
            return x
        if self.channels_last is not None:
            channels_last = self.channels_last
        elif onednn_fusion_available(x):
            channels_last = not grad
        else:
            return x
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def stem(self, conv: nn.Conv2d, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """relu(norm(conv(x))), folded when `norm` is foldable and nothing needs gradients."""
        if not foldable(norm) or needs_grad((conv, norm), x):
            return F.relu(norm(conv(x)))
        return self._conv("stem", conv, norm, x, relu=True, onednn=onednn_fusion_available(x))

    def stage(self, name: str, stage: nn.Module, x: torch.Tensor, x_owned: bool = False) -> torch.Tensor:
        """Runs the blocks of `stage` (an nn.Sequential): folded where their norms are foldable and nothing needs
        gradients, as modules otherwise.

        Args:
            x_owned: nothing else holds `x`, which may then be overwritten.
        """
        onednn = onednn_fusion_available(x)
        for index, block in enumerate(stage):
            pairs = _block_pairs(block)
            if pairs is None or not all(foldable(n) for _, n in pairs) or needs_grad((block,), x):
                x = block(x)
            else:
                x = self._block_no_grad(f"{name}.{index}", block, pairs, x, x_owned, onednn)
            x_owned = True
        return x


def needs_grad(modules, x: torch.Tensor) -> bool:
    """Whether running `modules` on `x` records gradients (grad mode on, and `x` or a parameter requires them)."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for m in modules for p in m.parameters())
