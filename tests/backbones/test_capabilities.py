"""A torch without the oneDNN operators of the fast paths, or a torchvision without a private helper: the plain
path (or an own function) runs instead, with the same results, and says so at DEBUG level."""
import copy
import logging

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d, poolers

import backbones
from backbones.capabilities import has_operator, onednn_convolutions, private_symbol
from backbones.memory_format import is_channels_last
from backbones.packed_conv import PackedConv2d, pack_convolutions

LOGGER = "backbones.capabilities"


def assert_close_maps(got: list, want: list, rtol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert (g - w).abs().max() <= rtol * w.abs().max(), (g - w).abs().max() / w.abs().max()


def test_the_operators_of_this_torch_are_found():
    assert has_operator("mkldnn", "_convolution_pointwise", "binary")
    assert not has_operator("mkldnn", "_convolution_pointwise_", "default")  # the in-place one is binary only
    assert not has_operator("mkldnn", "no_such_operator")
    assert onednn_convolutions() == torch.backends.mkldnn.is_available()


def test_a_missing_operator_is_noted_once_at_debug_level(drop_onednn, caplog):
    drop_onednn()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert not onednn_convolutions()
        assert not onednn_convolutions()
    assert len(caplog.records) == 1
    assert "torch.ops.mkldnn._reorder_convolution_weight.default" in caplog.records[0].getMessage()


def test_fused_extractor_without_onednn_gives_the_fast_and_the_plain_maps(drop_onednn, caplog):
    torch.manual_seed(0)
    model = backbones.create_backbone("resnet18", features_only=True, norm="frozen_bn").eval()
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):  # away from the identity, so that folding changes the weights
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    plain = copy.deepcopy(model).set_fused(False)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        fast, want = model(x), plain(x)
    drop_onednn()
    model.set_fused(True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER), torch.inference_mode():
        got = model(x)
    assert "convolutions run through F.conv2d" in caplog.text
    assert not any(is_channels_last(m) for m in got)  # NCHW throughout, as F.conv2d runs fastest without oneDNN
    assert_close_maps(got, want)
    assert_close_maps(got, fast)


def test_pack_convolutions_without_onednn_keeps_the_plain_modules(drop_onednn):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 2, 2))
    plain = copy.deepcopy(model)
    packed = pack_convolutions(copy.deepcopy(model))
    drop_onednn()
    assert [type(m) for m in pack_convolutions(model)] == [nn.Conv2d, nn.ReLU, nn.ConvTranspose2d]
    assert type(pack_convolutions(packed)[0]) is nn.Conv2d  # packed earlier: made plain again
    x = torch.randn(2, 8, 12, 12)
    with torch.inference_mode():
        assert torch.equal(model(x), plain(x))
    assert not any(isinstance(m, PackedConv2d) for m in model.modules())


def test_a_missing_private_symbol_gives_the_fallback_with_a_debug_note(caplog):
    def fallback():
        """Stands in for the missing helper."""

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert private_symbol("torchvision.ops.poolers", "_no_such_helper", fallback) is fallback
        assert private_symbol("torchvision.no_such_module", "helper", fallback) is fallback
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "torchvision.ops.poolers._no_such_helper is missing", "torchvision.no_such_module.helper is missing"]
    assert private_symbol("torchvision.ops.poolers", "_setup_scales", fallback) is poolers._setup_scales
