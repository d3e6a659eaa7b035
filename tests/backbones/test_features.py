"""features_only maps against torchvision's IntermediateLayerGetter, BatchNorm folding, and channels_last on a GPU."""
import copy

import pytest
import timm.models
import torch
import torchvision
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

import backbones

RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


def randomise_statistics(model: torch.nn.Module) -> None:
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)


def test_features_only_equals_intermediate_layer_getter(tmp_path):
    reference = torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d)
    randomise_statistics(reference)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    getter = IntermediateLayerGetter(reference, RETURN_LAYERS).eval()
    ours = backbones.create_backbone("resnet50", pretrained=str(path), features_only=True, out_indices=(1, 2, 3, 4),
                                     norm="frozen_bn").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        expected, got, fused = getter(x), ours.set_fused(False)(x), ours.set_fused(True)(x)
    assert len(got) == len(fused) == 4
    for key, value, folded in zip(RETURN_LAYERS.values(), got, fused):
        assert torch.equal(value, expected[key])  # unfused: the same operations as torchvision's
        assert (folded - expected[key]).abs().max() <= 1e-5 * expected[key].abs().max()


def test_features_only_keeps_weights_loaded_before_wrapping(tmp_path):
    full = backbones.create_backbone("resnet18")
    randomise_statistics(full)
    path = tmp_path / "r18.pth"
    torch.save(full.state_dict(), path)
    features = backbones.create_backbone("resnet18", pretrained=str(path), features_only=True, out_indices=(2,))
    assert torch.equal(features.layer2[0].conv1.weight, full.layer2[0].conv1.weight)
    assert not hasattr(features, "layer3") and not hasattr(features, "fc")


@pytest.mark.parametrize("name, style", [("resnet50", "caffe"), ("resnext50_32x4d", "pytorch")])
def test_fused_batchnorm_gives_the_same_maps(name, style):
    model = backbones.create_backbone(name, features_only=True, norm="frozen_bn", style=style).eval()
    randomise_statistics(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        got = backbones.fuse_batchnorm(model)(x)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    for e, g in zip(expected, got):
        assert (g - e).abs().max() <= 1e-5 * e.abs().max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("fused", [False, True])
def test_channels_last_gives_the_same_maps_and_gradients_on_the_gpu(fused):
    contiguous = backbones.create_backbone("resnet50", features_only=True, norm="frozen_bn", frozen_stages=1)
    randomise_statistics(contiguous)
    contiguous = contiguous.set_fused(fused).cuda().train()
    channels_last = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 128, 160, device="cuda")
    for autocast, tolerance in ((False, 1e-4), (True, 2e-2)):
        maps = {}
        for name, model in (("contiguous", contiguous), ("channels_last", channels_last)):
            model.zero_grad(set_to_none=True)
            layout = torch.channels_last if name == "channels_last" else torch.contiguous_format
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=False), \
                    torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
                maps[name] = model(x.contiguous(memory_format=layout))
                sum(m.float().mean() for m in maps[name]).backward()
        assert all(m.is_contiguous(memory_format=torch.channels_last) for m in maps["channels_last"])
        for got, want in zip(maps["channels_last"], maps["contiguous"]):
            assert (got.float() - want.float()).abs().max() <= tolerance * want.float().abs().max()
        got, want = channels_last.layer4[0].conv1.weight.grad, contiguous.layer4[0].conv1.weight.grad
        assert (got - want).abs().max() <= tolerance * want.abs().max()


def test_feature_info_is_timms_own():
    model = backbones.create_backbone("resnet18", features_only=True, out_indices=(1, 3))
    assert isinstance(model.feature_info, timm.models.FeatureInfo)
    assert model.feature_info.channels() == [64, 256] and model.feature_info.reduction() == [4, 16]
