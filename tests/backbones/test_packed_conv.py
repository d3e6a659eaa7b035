"""Packed convolutions against the plain modules: the same outputs within float rounding in inference, the plain
path wherever gradients are recorded, the same state dict, a cache that follows the weights and the input shape."""
import copy
import pickle

import pytest
import torch
from torch import nn

from backbones import create_backbone
from backbones.capabilities import onednn_convolutions
from backbones.packed_conv import PackedConv2d, PackedConvTranspose2d, clear_weight_caches, pack_convolutions

CONVOLUTIONS = [
    dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
    dict(in_channels=8, out_channels=16, kernel_size=1),
    dict(in_channels=8, out_channels=16, kernel_size=3, stride=2, padding=1, bias=False),
    dict(in_channels=8, out_channels=8, kernel_size=3, padding=2, dilation=2, groups=4),
    dict(in_channels=8, out_channels=4, kernel_size=7, stride=2, padding=3),
]
# without them pack_convolutions keeps the plain modules (tests/backbones/test_capabilities.py)
needs_onednn = pytest.mark.skipif(not onednn_convolutions(), reason="torch lacks the oneDNN operators")


def packed_pair(module: nn.Module) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    for parameter in module.parameters():
        parameter.data.normal_()
    return module, pack_convolutions(copy.deepcopy(module))


@needs_onednn
@pytest.mark.parametrize("options", CONVOLUTIONS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_packed_convolution_infers_as_the_plain_one(options, channels_last):
    plain, packed = packed_pair(nn.Conv2d(**options))
    assert type(packed) is PackedConv2d
    x = torch.randn(2, 8, 20, 24)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got, want = packed(x), plain(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last)


@needs_onednn
def test_the_deconvolution_of_a_mask_head_infers_as_the_plain_one():
    plain, packed = packed_pair(nn.Sequential(nn.ConvTranspose2d(8, 8, 2, 2), nn.ReLU(), nn.Conv2d(8, 3, 1)))
    assert type(packed[0]) is PackedConvTranspose2d and type(packed[2]) is PackedConv2d
    x = torch.randn(5, 8, 14, 14)
    with torch.no_grad():
        torch.testing.assert_close(packed(x), plain(x), rtol=1e-5, atol=1e-5)


def test_training_runs_the_plain_path_with_the_same_gradients():
    plain, packed = packed_pair(nn.Conv2d(8, 16, 3, padding=1))
    x = torch.randn(2, 8, 12, 12)
    out_plain, out_packed = plain(x), packed(x)
    assert torch.equal(out_packed, out_plain)
    out_plain.square().sum().backward()
    out_packed.square().sum().backward()
    assert torch.equal(packed.weight.grad, plain.weight.grad)


def test_the_cache_follows_the_weights_and_the_input_shape():
    plain, packed = packed_pair(nn.Conv2d(8, 16, 3, padding=1))
    with torch.no_grad():
        packed(torch.randn(1, 8, 10, 10))
        for module in (plain, packed):
            module.weight.mul_(2)
        for shape in [(1, 8, 10, 10), (3, 8, 16, 12)]:
            x = torch.randn(shape)
            torch.testing.assert_close(packed(x), plain(x), rtol=1e-5, atol=1e-5)
        packed.load_state_dict({k: v * 3 for k, v in plain.state_dict().items()})
        x = torch.randn(3, 8, 16, 12)
        torch.testing.assert_close(packed(x), 3 * plain(x), rtol=1e-4, atol=1e-4)


@needs_onednn
def test_packing_keeps_the_state_dict_and_unpacks():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ConvTranspose2d(4, 4, 2, 2))
    keys = list(model.state_dict())
    pack_convolutions(model)
    assert [type(m) for m in model] == [PackedConv2d, nn.BatchNorm2d, PackedConvTranspose2d]
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 8, 8))
    copied = pickle.loads(pickle.dumps(model))
    assert "_packed" not in copied[0].__dict__
    pack_convolutions(model, False)
    assert [type(m) for m in model] == [nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d]


class Skipped(nn.Sequential):
    pass


@needs_onednn
def test_skipped_modules_keep_their_convolutions():
    inner = Skipped(nn.Conv2d(3, 3, 1))
    model = nn.Sequential(inner, nn.Conv2d(3, 3, 1))
    pack_convolutions(model, skip=(Skipped,))
    assert type(inner[0]) is nn.Conv2d and type(model[1]) is PackedConv2d


@needs_onednn
def test_clear_weight_caches_drops_packed_and_folded_weights_and_they_come_back():
    backbone = create_backbone("resnet18", features_only=True).eval()
    head = pack_convolutions(nn.Conv2d(512, 8, 1))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = head(backbone(x)[-1])
        assert backbone.fused_cache_bytes > 0 and "_packed" in head.__dict__
        assert clear_weight_caches(nn.Sequential(backbone, head)) is not None
        assert backbone.fused_cache_bytes == 0 and "_packed" not in head.__dict__
        assert torch.equal(head(backbone(x)[-1]), expected)
