"""Pre-activation ResNets: timm ResNetV2 parity, the paper's parameter counts, feature maps, timm's intermediates API,
TorchScript, torch.fx, freezing and norms. The shared checks (forward, backward, feature_info, the timm contract,
frozen stages, grad checkpointing) run on them in test_models.py."""
import warnings

import pytest
import timm
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FrozenBatchNorm2d

import backbones
import heads
from backbones.norm import GroupNorm
from workbench.benchmarks.backbone import randomise_statistics


def randomised(model: nn.Module) -> nn.Module:
    """Random BatchNorm weights and statistics, so that a dropped or misplaced norm shows in the outputs."""
    randomise_statistics(model)
    return model


def images(size: int = 64, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch, 3, size, size)


def relative_difference(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def test_timm_resnetv2_50_checkpoint_gives_identical_outputs(tmp_path):
    reference = randomised(timm.create_model("resnetv2_50", pretrained=False)).eval()
    path = tmp_path / "resnetv2_50.pth"
    torch.save(reference.state_dict(), path)
    model = backbones.create_backbone("resnetv2_50", pretrained=path).eval()
    assert backbones.load_weights(model, path)["format"] == "timm_v2"
    x = images()
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), reference.forward_features(x))
        # timm's classifier is a 1x1 convolution, ours a linear layer: the same sums in another order
        assert relative_difference(model(x), reference(x)) <= 1e-6


def test_feature_maps_and_intermediates_are_timms(tmp_path):
    reference = randomised(timm.create_model("resnetv2_18", pretrained=False)).eval()
    path = tmp_path / "resnetv2_18.pth"
    torch.save(reference.state_dict(), path)
    model = backbones.create_backbone("resnetv2_18", pretrained=path).eval()
    features = backbones.create_backbone("resnetv2_18", pretrained=path, features_only=True).eval()
    x = images()
    with torch.no_grad():
        want_final, want = reference.forward_intermediates(x, norm=True)
        got_final, got = model.forward_intermediates(x, norm=True)
        maps = features(x)
    assert [(i["num_chs"], i["reduction"]) for i in reference.feature_info] == list(
        zip(features.feature_info.channels(), features.feature_info.reduction()))
    assert torch.equal(got_final, want_final) and all(torch.equal(g, w) for g, w in zip(got, want))
    assert all(torch.equal(m, w) for m, w in zip(maps[:4], want[:4]))  # features_only leaves the final norm out


@pytest.mark.parametrize("name, params", [("resnetv2_18", 11_687_720), ("resnetv2_34", 21_795_880),
                                          ("resnetv2_50", 25_549_352), ("resnetv2_101", 44_541_480),
                                          ("resnetv2_152", 60_185_128)])
def test_parameter_counts_equal_timm(name, params):
    with torch.device("meta"):
        model = backbones.create_backbone(name)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("depth, params, millions", [(110, 1_727_962, 1.7), (164, 1_703_258, 1.7),
                                                     (1001, 10_327_706, 10.2)])
def test_cifar_parameter_counts_match_the_paper(depth, params, millions):
    """The paper counts the weights of the convolutions and the classifier: ResNet-1001's BatchNorm adds 0.15M."""
    with torch.device("meta"):
        model = backbones.create_backbone(f"preact_resnet{depth}_cifar")
    assert sum(p.numel() for p in model.parameters()) == params
    weights = sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters())
    assert round(weights / 1e6, 1) == millions


def stage_outputs_of_the_plain_forward(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The stem convolution's and every stage's outputs, caught by hooks while `model(x)` runs."""
    caught = []
    modules = [model.conv1] + [module for name, module in model.named_children() if name.startswith("layer")]
    hooks = [m.register_forward_hook(lambda module, args, out: caught.append(out.clone())) for m in modules]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return caught


@pytest.mark.parametrize("name, norm", [("resnetv2_50", "frozen_bn"), ("resnetv2_18", "bn"),
                                        ("preact_resnet110_cifar", "bn")])
def test_features_only_equals_the_plain_forwards_stage_outputs(name, norm):
    """BatchNorm comes before the convolution here: nothing may fold it as in post-activation blocks."""
    model = randomised(backbones.create_backbone(name, norm=norm)).eval()
    features = backbones.create_backbone(name, norm=norm, features_only=True).eval()
    features.load_state_dict(model.state_dict(), strict=False)
    x = images(32 if name.endswith("_cifar") else 64)
    want = stage_outputs_of_the_plain_forward(model, x)
    with torch.no_grad():
        got = features(x)
        intermediates = model.forward_intermediates(x, intermediates_only=True)
    assert isinstance(features, backbones.PreActFeatures) and len(got) == len(want) == 5 - name.endswith("_cifar")
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert all(torch.equal(i, w) for i, w in zip(intermediates, want))


def test_fuse_batchnorm_leaves_preactivation_blocks_alone():
    model = randomised(backbones.create_backbone("resnetv2_50", norm="frozen_bn")).eval()
    x = images()
    with torch.no_grad():
        want = model(x)
        got = backbones.fuse_batchnorm(model)(x)
    assert torch.equal(got, want)
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 1 + 3 * 16


def test_the_folding_feature_extractor_refuses_preactivation_nets():
    with pytest.raises(TypeError, match="feature_extractor_for"):
        backbones.FeatureExtractor(backbones.create_backbone("resnetv2_18"), (1, 2))


def test_detectors_use_preactivation_features():
    model = heads.faster_rcnn("resnetv2_18", num_classes=3, neck="c4", min_size=64, max_size=64)
    assert isinstance(model.backbone.body, backbones.PreActFeatures)
    fpn = backbones.create_fpn_backbone("resnetv2_18", out_channels=16)
    assert isinstance(fpn.body, backbones.PreActFeatures) and fpn.body.feature_info.channels() == [64, 128, 256, 512]


def test_c4_detector_checkpoint_gives_the_whole_backbone(tmp_path):
    detector = randomised(heads.faster_rcnn("resnetv2_18", num_classes=3, neck="c4", min_size=64,
                                                      max_size=64))
    path = tmp_path / "detector.pth"
    torch.save({"model": detector.state_dict()}, path)
    model = backbones.create_backbone("resnetv2_18")
    report = backbones.load_weights(model, path)
    assert report["missing"] == ["fc.weight", "fc.bias"] and report["unexpected"] == []
    assert torch.equal(model.norm.running_mean, detector.roi_heads.box_head.norm.running_mean)
    assert torch.equal(model.layer4[1].conv2.weight, detector.roi_heads.box_head.res5[1].conv2.weight)


def test_forward_intermediates_follows_timm():
    model = randomised(backbones.create_backbone("resnetv2_18")).eval()
    x = images()
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        normed = model.forward_intermediates(x, indices=2, norm=True, intermediates_only=True)
        early, taken = model.forward_intermediates(x, indices=[1], stop_early=True)
        assert torch.equal(final, model.forward_features(x))
        assert [m.shape[1] for m in maps] == [64, 64, 128, 256, 512]
        assert torch.equal(normed[0], maps[3]) and torch.equal(normed[1], final)
        assert torch.equal(early, maps[1]) and torch.equal(taken[0], maps[1])
    with pytest.raises(ValueError, match="NHWC"):
        model.forward_intermediates(x, output_fmt="NHWC")


def test_prune_intermediate_layers_keeps_the_maps_taken():
    model = randomised(backbones.create_backbone("resnetv2_18")).eval()
    x = images()
    with torch.no_grad():
        want = model.forward_intermediates(x, indices=(1, 2), intermediates_only=True)
        assert model.prune_intermediate_layers((1, 2)) == [1, 2]
        got = model.forward_intermediates(x, indices=(1, 2), intermediates_only=True)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
        assert not hasattr(model, "layer3") and isinstance(model.norm, nn.Identity) and model.num_features == 128
        assert torch.equal(model(x), want[1])
    stem_only = backbones.create_backbone("resnetv2_18")
    stem_only.prune_intermediate_layers([0])
    assert isinstance(stem_only.maxpool, nn.Identity) and stem_only(x).shape == (2, 64, 32, 32)


def scripted(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, still supported
        return torch.jit.script(module)


@pytest.mark.parametrize("make", [
    lambda: backbones.create_backbone("resnetv2_18", num_classes=5),
    lambda: backbones.ResNetV2("bottleneck", (1, 1, 1), widths=(8, 16, 32), stem="cifar", shortcut="A", style="caffe"),
    lambda: backbones.create_backbone("resnetv2_50", features_only=True, out_indices=(0, 2)),
], ids=["resnetv2_18", "option-A-bottlenecks", "features"])
def test_torchscript_gives_the_same_outputs(make):
    model = randomised(make()).eval()
    x = images(32)
    with torch.no_grad():
        want, got = model(x), scripted(model)(x)
    if isinstance(want, list):
        assert len(got) == len(want) and all(torch.equal(g, w) for g, w in zip(got, want))
    else:
        assert torch.equal(got, want)


def test_fx_feature_extractor_gives_the_stage_outputs():
    model = randomised(backbones.create_backbone("resnetv2_18")).eval()
    nodes = {"conv1": "stem", "layer1": "c2", "layer2": "c3", "layer3": "c4", "layer4": "c5", "act": "final"}
    extractor = create_feature_extractor(model, nodes)
    x = images()
    with torch.no_grad():
        got, (final, maps) = extractor(x), model.forward_intermediates(x)
    assert all(torch.equal(got[key], m) for key, m in zip(nodes.values(), maps))
    assert torch.equal(got["final"], final)


@pytest.mark.parametrize("stride, reductions", [(16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])])
@pytest.mark.parametrize("name", ["resnetv2_18", "resnetv2_50"])
def test_output_stride_dilates_the_last_stages(name, stride, reductions):
    model = backbones.create_backbone(name, output_stride=stride, features_only=True)
    with torch.no_grad():
        maps = model(images(batch=1))
    assert [64 // m.shape[-1] for m in maps] == reductions == model.feature_info.reduction()


@pytest.mark.parametrize("norm, kind", [("bn", nn.BatchNorm2d), ("frozen_bn", FrozenBatchNorm2d), ("gn", GroupNorm),
                                        ("sync_bn", nn.SyncBatchNorm)])
def test_norm_choices_reach_every_norm(norm, kind):
    model = backbones.create_backbone("preact_resnet164_cifar", norm=norm)
    norms = [model.norm] + [getattr(block, f"norm{i}") for _, stage in backbones.preact.stages_of(model)
                            for block in stage for i in (1, 2, 3)]
    assert all(type(n) is kind for n in norms)
    assert model.eval()(images(32)).shape == (2, 10)


def test_frozen_stages_freeze_the_stem_convolution_and_the_stages():
    model = backbones.create_backbone("resnetv2_50", frozen_stages=2)
    assert not model.conv1.weight.requires_grad and not model.layer2[0].conv1.weight.requires_grad
    assert isinstance(model.layer1[0].norm1, FrozenBatchNorm2d) and isinstance(model.layer3[0].norm1, nn.BatchNorm2d)
    assert model.layer3[0].conv1.weight.requires_grad and model.norm.weight.requires_grad


def test_cifar_bottlenecks_follow_the_papers_code():
    model = backbones.create_backbone("preact_resnet164_cifar")
    first = model.layer2[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)  # the stride on the first 1x1
    assert isinstance(first.downsample, nn.Conv2d) and model.layer1[1].downsample is None
    assert model.pretrained_cfg["input_size"] == (3, 32, 32) and model.num_classes == 10


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(shortcut="none"), "choose one of A, B, C"),
    (dict(style="v1"), "pytorch, caffe"),
    (dict(output_stride=4), "(8, 16, 32)"),
])
def test_bad_values_are_named(kwargs, fragment):
    with pytest.raises(ValueError) as error:
        backbones.create_backbone("resnetv2_18", **kwargs)
    assert fragment in str(error.value)
