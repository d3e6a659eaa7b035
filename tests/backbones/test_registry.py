"""The registry and model options: names, tags, listing, and clear errors for bad values."""
import pytest
import torch

import backbones
from backbones import registry
from backbones.pretrained import PRETRAINED_CFGS


def test_paper_names_are_registered():
    names = backbones.list_backbones()
    for depth in (18, 34, 50, 101, 152):
        assert f"resnet{depth}" in names
    for depth in (20, 32, 44, 56, 110, 1202):
        assert f"resnet{depth}_cifar" in names
    for name in ("plain18", "plain34", "plain20_cifar", "plain32_cifar", "plain44_cifar", "plain56_cifar",
                 "plain110_cifar"):
        assert name in names


def test_list_filters_like_timm():
    assert backbones.list_backbones("resnet1*") == ["resnet101", "resnet110_cifar", "resnet1202_cifar", "resnet152",
                                                    "resnet18"]
    tagged = backbones.list_backbones("resnet50*", pretrained=True)
    assert {"resnet50.tv_in1k", "resnet50.tv2_in1k", "resnet50.a1_in1k", "resnet50.msra_in1k"} <= set(tagged)
    for depth in (18, 34, 50, 101, 152):
        assert f"resnet{depth}.tv_in1k" in backbones.list_backbones(pretrained=True)


@pytest.mark.parametrize("name, params", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("resnet101", 44_549_160),
    ("resnet152", 60_192_808), ("resnext50_32x4d", 25_028_904), ("resnext101_32x8d", 88_791_336),
    ("resnext101_64x4d", 83_455_272), ("wide_resnet50_2", 68_883_240), ("wide_resnet101_2", 126_886_696),
    ("resnext101_32x4d", 44_177_704),  # not in torchvision: timm's count
])
def test_parameter_counts_equal_torchvision(name, params):
    with torch.device("meta"):  # shapes only
        model = backbones.create_backbone(name)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7),
                                             (1202, 19.4)])
def test_cifar_parameter_counts_match_paper_table_6(depth, millions):
    model = backbones.create_backbone(f"resnet{depth}_cifar")
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(count, 2 if millions < 1 else 1) == millions


def test_resnext_and_wide_resnet_tags_are_torchvision_and_detectron2_releases():
    assert set(backbones.list_backbones(["resnext*", "wide_*"], pretrained=True)) == {
        "resnext50_32x4d.tv_in1k", "resnext50_32x4d.tv2_in1k", "resnext101_32x8d.tv_in1k",
        "resnext101_32x8d.tv2_in1k", "resnext101_32x8d.fair_in1k", "resnext101_64x4d.tv_in1k",
        "wide_resnet50_2.tv_in1k", "wide_resnet50_2.tv2_in1k", "wide_resnet101_2.tv_in1k", "wide_resnet101_2.tv2_in1k",
    }
    cfgs = {f"{arch}.{tag}": cfg for arch, tags in PRETRAINED_CFGS.items() for tag, cfg in tags.items()}
    assert cfgs["resnext101_64x4d.tv_in1k"]["input_size"] == cfgs["resnext50_32x4d.tv2_in1k"]["input_size"]
    assert cfgs["wide_resnet101_2.tv2_in1k"]["url"] == "https://download.pytorch.org/models/wide_resnet101_2-d733dc28.pth"


def test_test_input_sizes_are_squares_of_the_training_channels_no_smaller_than_the_training_size():
    cfgs = {f"{arch}.{tag}": cfg for arch, tags in PRETRAINED_CFGS.items() for tag, cfg in tags.items()}
    sizes = {name: (cfg["input_size"], cfg["test_input_size"])
             for name, cfg in cfgs.items() if "test_input_size" in cfg}
    assert {name for name in cfgs if name.endswith(".tv2_in1k")} | {"resnext101_64x4d.tv_in1k"} <= set(sizes)
    for name, ((channels, height, width), (test_channels, test_height, test_width)) in sizes.items():
        assert test_channels == channels and test_height == test_width >= max(height, width), name


def test_fair_resnext_tag_expects_bgr_pixels_in_0_255():
    with torch.device("meta"):
        model = backbones.create_backbone("resnext101_32x8d.fair_in1k")
    cfg = model.pretrained_cfg
    assert cfg["url"] == "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/FAIR/X-101-32x8d.pkl"
    assert (cfg["file_format"], cfg["channel_order"], cfg["pixel_range"]) == ("caffe2", "BGR", 255.0)
    # detectron2's PIXEL_MEAN (103.530, 116.280, 123.675) and PIXEL_STD (57.375, 57.120, 58.395), in 0-1 units
    assert cfg["mean"] == pytest.approx([m / 255 for m in (103.530, 116.280, 123.675)])
    assert cfg["std"] == pytest.approx([s / 255 for s in (57.375, 57.120, 58.395)])
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)  # STRIDE_IN_1X1=False
    assert model.layer2[0].conv2.groups == 32 and model.layer2[0].conv2.out_channels == 512


def test_tag_selects_the_config():
    model = backbones.create_backbone("resnet50.msra_in1k")
    assert model.pretrained_cfg["style"] == "caffe" and model.pretrained_cfg["channel_order"] == "BGR"
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    assert backbones.create_backbone("resnet50").pretrained_cfg["tag"] == "tv_in1k"


def test_shortcut_options():
    counts = {s: sum(p.numel() for p in backbones.create_backbone("resnet34", shortcut=s).parameters())
              for s in ("A", "B", "C", "none")}
    assert counts["A"] == counts["none"] < counts["B"] < counts["C"]
    model = backbones.create_backbone("resnet34", shortcut="A")
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("name, style", [("resnet50", "caffe"), ("resnext50_32x4d", "pytorch")])
@pytest.mark.parametrize("stride, reductions", [(16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])])
def test_output_stride_dilates_the_last_stages(name, style, stride, reductions):
    model = backbones.create_backbone(name, output_stride=stride, features_only=True, style=style)
    x = torch.randn(1, 3, 64, 64)
    assert [64 // m.shape[-1] for m in model(x)] == reductions == model.feature_info.reduction()


@pytest.mark.parametrize("norm, kind", [("bn", torch.nn.BatchNorm2d), ("gn", torch.nn.GroupNorm),
                                        ("sync_bn", torch.nn.SyncBatchNorm)])
def test_norm_choices(norm, kind):
    model = backbones.create_backbone("resnet20_cifar", norm=norm)
    assert isinstance(model.layer1[0].bn1, kind)


@pytest.mark.parametrize("norm", ["bn", "frozen_bn", "sync_bn", "gn"])
def test_norm_choices_on_grouped_bottlenecks(norm):
    model = backbones.create_backbone("resnext50_32x4d", norm=norm, features_only=True).eval()
    block = model.layer1[0]
    assert block.conv2.groups == 32 and block.conv2.weight.shape == (128, 4, 3, 3)
    assert type(block.bn2) is type(backbones.norm.make_norm(norm, 128))
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == model.feature_info.channels()


def test_group_norm_keeps_channels_last_maps_channels_last():
    torch.manual_seed(0)
    norm = backbones.norm.make_norm("gn", 64)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(6, 64, 7, 7)
    plain = x.clone().requires_grad_()
    channels_last = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    want, got = torch.nn.functional.group_norm(plain, 32, norm.weight, norm.bias), norm(channels_last)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want)
    grad = torch.randn(6, 64, 7, 7)
    torch.testing.assert_close(torch.autograd.grad(got, channels_last, grad)[0],
                               torch.autograd.grad(want, plain, grad)[0])


def test_frozen_bn_is_constant_in_training():
    model = backbones.create_backbone("resnet18", norm="frozen_bn").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("call, fragment", [
    (lambda: backbones.create_backbone("resnet05"), "did you mean resnet50"),
    (lambda: backbones.create_backbone("resent50"), "did you mean resnet50"),
    (lambda: backbones.create_backbone("resnet50.imagenet"), "resnet50.tv_in1k"),
    (lambda: backbones.create_backbone("resnet18", features_only=True, out_indices=(1, 5)), "0..4"),
    (lambda: backbones.create_backbone("resnet20_cifar", features_only=True, out_indices=(4,)), "0..3"),
    (lambda: backbones.create_backbone("resnet18", out_indices=(1,)), "features_only=True"),
    (lambda: backbones.create_backbone("resnet18", norm="batchnorm"), "bn, frozen_bn, sync_bn, gn"),
    (lambda: backbones.create_backbone("resnet50", style="v1"), "pytorch, caffe"),
    (lambda: backbones.create_backbone("resnet18", shortcut="D"), "A, B, C, none"),
    (lambda: backbones.ResNet("basic", (2, 2), cardinality=32, base_width=4),
     "basic blocks support only cardinality=1 and base_width=64, got cardinality=32, base_width=4"),
    (lambda: backbones.ResNet("bottleneck", (1, 1), cardinality=0), "cardinality=0 and base_width=64"),
    (lambda: backbones.create_backbone("resnet20_cifar", shortcut_pad="left"), "shortcut_pad='left'"),
    (lambda: backbones.blocks.ZeroPadShortcut(2, 16, "both"), "choose one of append, center"),
    (lambda: backbones.create_backbone("resnet18", output_stride=4), "(8, 16, 32)"),
    (lambda: backbones.create_backbone("resnet20_cifar", output_stride=8), "(4,)"),
    (lambda: backbones.create_backbone("resnet18", frozen_stages=5), "-1..4"),
    (lambda: backbones.create_backbone("resnet18", dilation=2), "unknown option(s) dilation"),
    (lambda: backbones.create_backbone("resnet18").reset_classifier(10, "mean"), "global_pool='mean'"),
    (lambda: backbones.create_backbone("plain18", pretrained=True), "no pretrained weights are registered"),
])
def test_bad_values_are_named(call, fragment):
    with pytest.raises(ValueError) as error:
        call()
    assert fragment in str(error.value)


def test_download_failure_names_the_url_and_the_local_file_route(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = "http://127.0.0.1:9/resnet18-f37072fd.pth"
    monkeypatch.setitem(PRETRAINED_CFGS["resnet18"]["tv_in1k"], "url", url)
    with pytest.raises(RuntimeError) as error:
        backbones.create_backbone("resnet18.tv_in1k", pretrained=True)
    assert url in str(error.value) and "pretrained='/path/to/resnet18-f37072fd.pth'" in str(error.value)


def test_register_backbone_adds_a_builder(monkeypatch):
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))

    @backbones.register_backbone
    def tiny_test_resnet(pretrained=False, **kwargs):
        return backbones.ResNet("basic", (1, 1), widths=(8, 16), stem="cifar", **kwargs)

    assert "tiny_test_resnet" in backbones.list_backbones("tiny*")
    assert backbones.create_backbone("tiny_test_resnet", num_classes=3)(torch.randn(1, 3, 16, 16)).shape == (1, 3)
    with pytest.raises(ValueError, match="already registered"):
        backbones.register_backbone(tiny_test_resnet)
