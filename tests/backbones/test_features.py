"""features_only maps against torchvision's IntermediateLayerGetter, and BatchNorm folding."""
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


def test_fused_batchnorm_gives_the_same_maps():
    model = backbones.create_backbone("resnet50", features_only=True, norm="frozen_bn", style="caffe").eval()
    randomise_statistics(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        got = backbones.fuse_batchnorm(model)(x)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    for e, g in zip(expected, got):
        assert (g - e).abs().max() <= 1e-5 * e.abs().max()
