"""Checkpoints of every supported format load into our ResNets and reproduce the original model's outputs."""
import argparse
import logging
import os
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck

import backbones
import heads
from backbones.weights import (
    CheckpointError,
    CheckpointMismatchError,
    convert_state_dict,
    load_weights,
    read_checkpoint,
)
from backbones.weights.formats.detectron2 import BN_EPS
from backbones.safe_pickle import load_pickle
from tests.backbones.weight_files import C2_MODULES, randomised, save_pickle, split_key, to_caffe2

D2_MODULES = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "bn1": "conv1.norm", "bn2": "conv2.norm",
              "bn3": "conv3.norm", "downsample.0": "shortcut", "downsample.1": "shortcut.norm"}
DETECTOR_HEADS = {
    "d2_fpn": ("backbone.fpn_lateral2.weight", "backbone.top_block.p6.weight",
               "proposal_generator.rpn_head.conv.weight", "roi_heads.box_head.fc1.weight"),
    "d2_c4": ("proposal_generator.rpn_head.conv.weight", "roi_heads.box_predictor.cls_score.weight"),
    "tv_fpn": ("backbone.fpn.inner_blocks.0.0.weight", "rpn.head.conv.0.0.weight", "roi_heads.box_head.fc6.weight"),
    "mmdet": ("neck.lateral_convs.0.conv.weight", "rpn_head.rpn_conv.weight", "roi_head.bbox_head.fc_cls.weight",
              "roi_head.mask_head.conv_logits.weight"),
}
# Where torchvision-named detectors keep the ResNet (our C4 detectors: layer4 in the box head).
DETECTOR_BACKBONE = ("backbone.body.", "roi_heads.box_head.res5.")
SMALL_HEADS = {"fpn": dict(fpn_channels=16, representation_size=32, mask_head_channels=8, mask_head_convs=1),
               "c4": dict(mask_head_channels=8)}
# detectron2's own ImageNet files keep BatchNorm unfused, spelled as detectron2's MSRA files or as Caffe2's SpatialBN
D2_NORM_SUFFIXES = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean", "running_var": "running_var"}
SPATIAL_BN_SUFFIXES = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
# Small bottleneck nets with the 3x3 layouts of ResNeXt (grouped) and wide ResNets: (cardinality, base width).
SMALL_LAYERS = (1, 2, 1, 1)
SMALL_VARIANTS = {"resnext": (4, 8), "wide": (1, 128)}


def torchvision_small(variant: str) -> nn.Module:
    cardinality, base_width = SMALL_VARIANTS[variant]
    return torchvision.models.ResNet(TorchvisionBottleneck, list(SMALL_LAYERS), groups=cardinality,
                                     width_per_group=base_width)


def timm_small(variant: str) -> nn.Module:
    cardinality, base_width = SMALL_VARIANTS[variant]
    return timm.models.resnet.ResNet(timm.models.resnet.Bottleneck, list(SMALL_LAYERS), cardinality=cardinality,
                                     base_width=base_width)


def our_small(variant: str) -> nn.Module:
    cardinality, base_width = SMALL_VARIANTS[variant]
    return backbones.ResNet("bottleneck", SMALL_LAYERS, cardinality=cardinality, base_width=base_width)


# The source (torchvision) and target of the round trips: ResNet-18 into torchvision's, a small ResNeXt into ours.
ROUND_TRIP_MODELS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.resnet18),
    "small_resnext": (lambda: torchvision_small("resnext"), lambda: our_small("resnext")),
}


def image() -> torch.Tensor:
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(image())


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def to_detectron2(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames a torchvision state dict to detectron2's ResNet names."""
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith("fc."):
            renamed["linear." + key.removeprefix("fc.")] = value
        elif key.startswith(("conv1.", "bn1.")):
            renamed["stem.conv1." + ("norm." if key.startswith("bn1.") else "") + key.split(".")[1]] = value
        else:
            stage_block, module, param = split_key(key)
            renamed[f"res{stage_block.replace('_', '.')}.{D2_MODULES[module]}.{param}"] = value
    return renamed


def to_caffe2_unfused(state_dict: dict[str, torch.Tensor], norm_suffixes: dict[str, str]) -> dict[str, np.ndarray]:
    """Renames a torchvision state dict to Caffe2 names with BatchNorm unfused (`res2_0_branch2a_bn_gamma`, ...), as
    detectron2's ImageNet files (R-50.pkl, X-101-32x8d.pkl) keep it; `norm_suffixes` spells the norm's tensors."""
    blobs = {"pred_w": state_dict["fc.weight"], "pred_b": state_dict["fc.bias"], "conv1_w": state_dict["conv1.weight"]}
    for key, value in state_dict.items():
        if key.startswith("bn1."):
            name, param = "res_conv1_bn", key.removeprefix("bn1.")
        elif key.startswith("layer"):
            stage_block, module, param = split_key(key)
            name = f"res{stage_block}_{C2_MODULES[module]}"
        else:
            continue
        if not name.endswith("_bn"):
            blobs[name + "_w"] = value
        elif param in norm_suffixes:
            blobs[f"{name}_{norm_suffixes[param]}"] = value
    return {k: v.detach().numpy().copy() for k, v in blobs.items()}


def save_torch(obj: object, path: os.PathLike) -> str:
    torch.save(obj, path)
    return str(path)


def write_torchvision(sd: dict, tmp_path) -> str:
    return save_torch(sd, tmp_path / "resnet18.pth")


def write_torchvision_training(sd: dict, tmp_path) -> str:
    ddp = {"module." + k: v for k, v in sd.items()}
    return save_torch({"model": ddp, "optimizer": {}, "epoch": 3, "args": argparse.Namespace(lr=0.1)},
                      tmp_path / "checkpoint.pth")


def write_detectron2(sd: dict, tmp_path) -> str:
    d2 = {k: v.numpy() for k, v in to_detectron2(sd).items()}
    return save_pickle({"model": d2, "__author__": "test"}, tmp_path / "model_final.pkl")


def write_caffe2(sd: dict, tmp_path) -> str:
    return save_pickle(to_caffe2(sd), tmp_path / "R-18.pkl")


def write_detectron_blobs(sd: dict, tmp_path) -> str:
    blobs = to_caffe2(sd, classifier="fc1000")
    blobs.update({k + "_momentum": np.zeros_like(v) for k, v in blobs.items()})
    return save_pickle({"blobs": blobs, "cfg": "MODEL: {}"}, tmp_path / "R-18-blobs.pkl", protocol=2)


def write_detectron2_imagenet(sd: dict, tmp_path) -> str:
    return save_pickle(to_caffe2_unfused(sd, D2_NORM_SUFFIXES), tmp_path / "X-101-32x8d.pkl")


def write_caffe2_spatial_bn(sd: dict, tmp_path) -> str:
    return save_pickle(to_caffe2_unfused(sd, SPATIAL_BN_SUFFIXES), tmp_path / "spatial_bn.pkl")


def write_mmpretrain(sd: dict, tmp_path) -> str:
    mm = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in sd.items()}
    return save_torch({"state_dict": mm, "meta": {}}, tmp_path / "mmpretrain.pth")


@pytest.mark.parametrize("architecture", ROUND_TRIP_MODELS)
@pytest.mark.parametrize("write, format_name, tolerance", [
    (write_torchvision, "torchvision", 0.0),
    (write_torchvision_training, "torchvision", 0.0),
    (write_detectron2, "detectron2", 0.0),
    (write_caffe2, "caffe2", 1e-6),  # BatchNorm folded into an affine: float rounding
    (write_detectron_blobs, "caffe2", 1e-6),
    (write_detectron2_imagenet, "caffe2", 0.0),
    (write_caffe2_spatial_bn, "caffe2", 0.0),
    (write_mmpretrain, "mmpretrain", 0.0),
])
def test_format_round_trip(write, format_name, tolerance, architecture, tmp_path):
    make_source, make_target = ROUND_TRIP_MODELS[architecture]
    source = randomised(make_source())
    path = write(source.state_dict(), tmp_path)
    model = make_target()
    report = load_weights(model, path)
    assert report == dict(format=format_name, missing=[], unexpected=[], mismatched=[], dropped=[], ignored=[])
    want = logits(source)
    assert max_diff(logits(model), want) <= tolerance * want.abs().max()


@pytest.mark.parametrize("make_source, make_target", [
    (lambda: timm.create_model("resnet18"), torchvision.models.resnet18),
    (lambda: timm_small("wide"), lambda: our_small("wide")),
    (lambda: timm_small("resnext"), lambda: our_small("resnext")),
], ids=["resnet18", "small_wide", "small_resnext"])
def test_timm_safetensors_round_trip(make_source, make_target, tmp_path):
    source = randomised(make_source())
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(source.state_dict(), path)
    model = make_target()
    assert load_weights(model, path)["format"] == "torchvision"
    assert torch.equal(logits(model), logits(source))


def detector_checkpoint(layout: str, sd: dict) -> dict:
    backbone = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if layout == "tv_fpn":
        ckpt = {"backbone.body." + k: v for k, v in backbone.items()}
    elif layout == "mmdet":
        ckpt = {"backbone." + k: v for k, v in backbone.items()}
    else:
        d2 = to_detectron2(backbone)
        prefix = "backbone.bottom_up." if layout == "d2_fpn" else "backbone."
        ckpt = {("roi_heads." if k.startswith("res5.") and layout == "d2_c4" else prefix) + k: v for k, v in d2.items()}
    return {**ckpt, **{k: torch.zeros(4, 4) for k in DETECTOR_HEADS[layout]}}


@pytest.mark.parametrize("architecture", ROUND_TRIP_MODELS)
@pytest.mark.parametrize("layout, format_name", [("d2_fpn", "detectron2"), ("d2_c4", "detectron2"),
                                                 ("tv_fpn", "torchvision"), ("mmdet", "mmpretrain")])
def test_detector_backbone_loads_without_heads(layout, format_name, architecture, tmp_path, caplog):
    make_source, make_target = ROUND_TRIP_MODELS[architecture]
    source = randomised(make_source())
    state_dict = detector_checkpoint(layout, source.state_dict())
    # mmdet saves its detectors as {"meta": ..., "state_dict": ...}
    content = {"meta": {"epoch": 12}, "state_dict": state_dict} if layout == "mmdet" else {"model": state_dict}
    path = save_torch(content, tmp_path / "detector.pth")
    model = make_target()
    fresh_fc = model.fc.weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_weights(model, path)
    assert report["format"] == format_name
    assert report["missing"] == ["fc.weight", "fc.bias"] and report["unexpected"] == []
    assert sorted(report["ignored"]) == sorted(DETECTOR_HEADS[layout])
    assert "has no classifier" in caplog.text
    assert f"ignoring {len(DETECTOR_HEADS[layout])} keys of a detector's neck and heads" in caplog.text
    assert torch.equal(model.fc.weight, fresh_fc)
    loaded, expected = tensors(model), tensors(source)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected if not k.startswith("fc."))


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d"])
def test_parity_with_torchvision(name):
    reference = randomised(getattr(torchvision.models, name)())
    model = backbones.create_backbone(name)
    load_weights(model, reference.state_dict())
    assert torch.equal(logits(model), logits(reference))


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
def test_parity_with_timm(name, tmp_path):
    reference = randomised(timm.create_model(name))
    path = tmp_path / f"{name}.safetensors"
    safetensors.torch.save_file(reference.state_dict(), path)
    model = backbones.create_backbone(name, pretrained=path)
    assert torch.equal(logits(model), logits(reference))


def test_create_backbone_loads_a_local_file(tmp_path):
    source = randomised(torchvision.models.resnet18())
    path = write_caffe2(source.state_dict(), tmp_path)
    model = backbones.create_backbone("resnet18", pretrained=path)
    assert max_diff(logits(model), logits(source)) <= 1e-4


@pytest.fixture(scope="module")
def caffe2_resnet50(tmp_path_factory) -> tuple[dict[str, np.ndarray], str]:
    """MSRA-style ResNet-50 blobs with random weights scaled to keep activations of order one, and their file."""
    generator = np.random.default_rng(0)

    def conv(name: str, out_channels: int, in_channels: int, size: int) -> None:
        fan_in = in_channels * size * size
        blobs[name + "_w"] = generator.normal(0, np.sqrt(2 / fan_in), (out_channels, in_channels, size, size))

    def affine(name: str, channels: int, scale: float = 1.0) -> None:
        blobs[name + "_s"] = generator.uniform(0.5, 1.0, channels) * scale
        blobs[name + "_b"] = generator.normal(0, 0.1, channels)

    blobs = {}
    conv("conv1", 64, 3, 7)
    affine("res_conv1_bn", 64)
    in_channels = 64
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=2):
        for block in range(depth):
            prefix = f"res{stage}_{block}_"
            branches = {"branch2a": (planes, in_channels, 1), "branch2b": (planes, planes, 3),
                        "branch2c": (planes * 4, planes, 1)}
            for branch, (out_channels, channels_in, size) in branches.items():
                conv(prefix + branch, out_channels, channels_in, size)
                affine(prefix + branch + "_bn", out_channels, 0.2 if branch == "branch2c" else 1.0)
            if block == 0:
                conv(prefix + "branch1", planes * 4, in_channels, 1)
                affine(prefix + "branch1_bn", planes * 4)
            in_channels = planes * 4
    blobs["pred_w"] = generator.normal(0, 0.01, (1000, 2048))
    blobs["pred_b"] = generator.normal(0, 0.01, 1000)
    blobs = {k: v.astype(np.float32) for k, v in blobs.items()}
    return blobs, save_pickle(blobs, tmp_path_factory.mktemp("caffe2") / "R-50.pkl")


def caffe2_reference_forward(blobs: dict[str, np.ndarray], x: torch.Tensor) -> torch.Tensor:
    """ResNet-50 v1 written from the blobs: stride on branch2a, BatchNorm as the affine s * x + b."""
    w = {k: torch.from_numpy(v) for k, v in blobs.items()}

    def affine(x: torch.Tensor, name: str) -> torch.Tensor:
        return x * w[name + "_s"].view(1, -1, 1, 1) + w[name + "_b"].view(1, -1, 1, 1)

    x = F.relu(affine(F.conv2d(x, w["conv1_w"], stride=2, padding=3), "res_conv1_bn"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    for stage, depth in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        for block in range(depth):
            p = f"res{stage}_{block}_"
            stride = 2 if block == 0 and stage > 2 else 1
            out = F.relu(affine(F.conv2d(x, w[p + "branch2a_w"], stride=stride), p + "branch2a_bn"))
            out = F.relu(affine(F.conv2d(out, w[p + "branch2b_w"], padding=1), p + "branch2b_bn"))
            out = affine(F.conv2d(out, w[p + "branch2c_w"]), p + "branch2c_bn")
            shortcut = affine(F.conv2d(x, w[p + "branch1_w"], stride=stride), p + "branch1_bn") if block == 0 else x
            x = F.relu(out + shortcut)
    return F.linear(x.mean((2, 3)), w["pred_w"], w["pred_b"])


@pytest.mark.parametrize("norm", ["bn", "frozen_bn"])
def test_caffe_style_resnet50_matches_functional_reference(norm, caffe2_resnet50):
    blobs, path = caffe2_resnet50
    model = backbones.create_backbone("resnet50", style="caffe", norm=norm)
    assert load_weights(model, path)["format"] == "caffe2"
    expected = caffe2_reference_forward(blobs, image())
    assert max_diff(logits(model), expected) <= 1e-4
    pytorch_style = backbones.create_backbone("resnet50", style="pytorch", norm=norm)
    load_weights(pytorch_style, path)
    assert max_diff(logits(pytorch_style), expected) > 1e-3


def test_caffe2_norm_statistics_make_batchnorm_the_affine():
    scale, bias = torch.tensor([0.5, 2.0]), torch.tensor([0.1, -0.3])
    converted, _ = convert_state_dict({"conv1_w": torch.ones(2, 3, 7, 7), "res_conv1_bn_s": scale,
                                       "res_conv1_bn_b": bias})
    assert torch.equal(converted["bn1.running_mean"], torch.zeros(2))
    assert torch.allclose(converted["bn1.running_var"], torch.full((2,), 1 - BN_EPS))
    norm = nn.BatchNorm2d(2, eps=BN_EPS).eval()
    norm.load_state_dict({k.removeprefix("bn1."): v for k, v in converted.items() if k.startswith("bn1.")},
                         strict=False)
    x = torch.randn(1, 2, 3, 3)
    assert torch.allclose(norm(x), x * scale.view(1, 2, 1, 1) + bias.view(1, 2, 1, 1), atol=1e-6)


class RunsShellCommand:
    """Pickles as a call of os.system, as a malicious checkpoint would."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_planted_pickle_is_refused_without_side_effect(tmp_path):
    marker = tmp_path / "pwned"
    path = save_pickle({"conv1.weight": RunsShellCommand(f"touch {marker}")}, tmp_path / "evil.pkl")
    with pytest.raises(pickle.UnpicklingError, match=r"system.*evil\.pkl"):
        load_pickle(path)
    with pytest.raises(ValueError, match="evil.pkl") as error:
        read_checkpoint(path)
    assert isinstance(error.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()


@pytest.mark.parametrize("protocol, spelling", [(2, b"numpy._core.multiarray"), (2, b"numpy.core.multiarray"),
                                               (5, b"numpy._core.multiarray")])
def test_safe_pickle_reads_numpy_arrays_and_containers(protocol, spelling, tmp_path):
    content = OrderedDict(weight=np.arange(6, dtype=np.float32).reshape(2, 3), count=np.int64(7), tags={"a", "b"})
    data = pickle.dumps(content, protocol=protocol)
    path = tmp_path / "arrays.pkl"
    path.write_bytes(data.replace(b"numpy._core.multiarray", spelling))
    loaded = load_pickle(path)
    assert isinstance(loaded, OrderedDict) and loaded["tags"] == {"a", "b"} and loaded["count"] == 7
    np.testing.assert_array_equal(loaded["weight"], content["weight"])


def broken_checkpoint(tmp_path) -> str:
    sd = torchvision.models.resnet18().state_dict()
    del sd["layer1.0.conv1.weight"]
    sd["extra.weight"] = torch.zeros(3)
    sd["layer2.0.conv1.weight"] = torch.zeros(128, 64, 1, 1)
    return save_torch(sd, tmp_path / "broken.pth")


def test_mismatch_names_each_key_and_the_file(tmp_path):
    path = broken_checkpoint(tmp_path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_weights(torchvision.models.resnet18(), path)
    message = str(error.value)
    for text in ("broken.pth", "layer1.0.conv1.weight", "extra.weight", "layer2.0.conv1.weight", "(128, 64, 1, 1)",
                 "(128, 64, 3, 3)", "1 missing", "1 unexpected", "1 shape"):
        assert text in message
    assert isinstance(error.value, ValueError)


def test_non_strict_loads_what_matches(tmp_path):
    path = broken_checkpoint(tmp_path)
    model = torchvision.models.resnet18()
    report = load_weights(model, path, strict=False)
    assert report["missing"] == ["layer1.0.conv1.weight"]
    assert report["unexpected"] == ["extra.weight"]
    assert report["mismatched"] == ["layer2.0.conv1.weight"]
    assert torch.equal(model.fc.weight, read_checkpoint(path)["fc.weight"])


@pytest.mark.parametrize("num_classes", [10, 0])
def test_classifier_of_another_size_is_dropped(num_classes, caplog):
    source = randomised(torchvision.models.resnet18())
    model = backbones.create_backbone("resnet18", num_classes=num_classes)
    fresh = tensors(model)
    with caplog.at_level(logging.WARNING):
        report = load_weights(model, source.state_dict())
    assert report["dropped"] == ["fc.weight", "fc.bias"] and report["missing"] == []
    assert "dropping the checkpoint's classifier" in caplog.text
    loaded, expected = tensors(model), tensors(source)
    for key, value in loaded.items():
        assert torch.equal(value, fresh[key] if key.startswith("fc.") else expected[key]), key


def test_ema_weights_are_used_only_without_plain_ones(tmp_path):
    plain, ema = {"conv1.weight": torch.zeros(1)}, {"conv1.weight": torch.ones(1)}
    both = save_torch({"state_dict": plain, "state_dict_ema": ema}, tmp_path / "both.pth")
    only_ema = save_torch({"model_ema": ema, "epoch": 1}, tmp_path / "ema.pth")
    assert torch.equal(read_checkpoint(both)["conv1.weight"], plain["conv1.weight"])
    assert torch.equal(read_checkpoint(only_ema)["conv1.weight"], ema["conv1.weight"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        read_checkpoint(tmp_path / "nowhere.pth")


@pytest.mark.parametrize("filename", ["corrupt.pth", "corrupt.pkl", "corrupt.safetensors"])
def test_corrupt_file_is_a_value_error_naming_it(filename, tmp_path):
    path = tmp_path / filename
    path.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(ValueError, match=filename):
        read_checkpoint(path)


def test_unknown_format_lists_keys():
    with pytest.raises(ValueError, match="encoder.patch_embed.weight"):
        convert_state_dict({"encoder.patch_embed.weight": torch.zeros(1)})


def our_detector(neck: str) -> tuple[nn.Module, dict]:
    """A small Mask R-CNN R18 of ours with random BN statistics, and its checkpoint as tools/train_det.py saves it."""
    torch.manual_seed(0)
    model = randomised(heads.mask_rcnn("resnet18", num_classes=3, neck=neck, min_size=64, max_size=64,
                                       **SMALL_HEADS[neck]))
    return model, {"model": model.state_dict(), "iteration": 5, "config": {"model": {"kind": "mask_rcnn"}}}


def torchvision_detector() -> tuple[nn.Module, dict]:
    """torchvision's Mask R-CNN layout (frozen BN, `mask_fcn` names) on a resnet18, saved as its state dict."""
    torch.manual_seed(0)
    model = randomised(MaskRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5),
                                num_classes=3))
    return model, model.state_dict()


def detector_stages(model: nn.Module) -> list[torch.Tensor]:
    """C2..C5 of a detector's ResNet: the body's maps (torchvision's come as a dict), then res5 on C4 for C4; ours
    unfused, to compare the weights loaded without the rounding of BatchNorm folding."""
    body = model.backbone.body
    if isinstance(body, backbones.FeatureExtractor):
        body.set_fused(False)
    with torch.no_grad():
        maps = body(image())
        maps = list(maps.values()) if isinstance(maps, dict) else maps
        res5 = getattr(model.roi_heads.box_head, "res5", None)
        return maps + [res5(maps[-1])] if res5 is not None else maps


@pytest.mark.parametrize("build", [lambda: our_detector("fpn"), lambda: our_detector("c4"), torchvision_detector],
                         ids=["ours_fpn", "ours_c4", "torchvision_fpn"])
def test_detector_checkpoint_gives_its_backbone(build, tmp_path, caplog):
    detector, checkpoint = build()
    path = save_torch(checkpoint, tmp_path / "model_final.pth")
    model = backbones.create_backbone("resnet18")
    with caplog.at_level(logging.WARNING):
        report = load_weights(model, path)
    saved = read_checkpoint(path)
    heads_keys = [k for k in saved if not k.startswith(DETECTOR_BACKBONE)]
    assert sorted(report["ignored"]) == sorted(heads_keys)
    assert report["unexpected"] == report["mismatched"] == [] and report["missing"] == ["fc.weight", "fc.bias"]
    assert f"model_final.pth: loading the backbone only; ignoring {len(heads_keys)} keys" in caplog.text
    expected = detector_stages(detector.eval())
    stages = backbones.FeatureExtractor(model.eval(), (1, 2, 3, 4)).set_fused(False)(image())[-len(expected):]
    for got, want in zip(stages, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def write_resnet50(tmp_path) -> str:
    return save_torch(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")


def write_mlp(tmp_path) -> str:
    return save_torch(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).state_dict(), tmp_path / "mlp.pth")


def write_integer_safetensors(tmp_path) -> str:
    state_dict = {k: v.long() for k, v in torchvision.models.resnet18().state_dict().items()}
    safetensors.torch.save_file(state_dict, tmp_path / "integers.safetensors")
    return str(tmp_path / "integers.safetensors")


def write_wrong_shape_safetensors(tmp_path) -> str:
    state_dict = dict(torchvision.models.resnet18().state_dict(), **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    safetensors.torch.save_file(state_dict, tmp_path / "shape.safetensors")
    return str(tmp_path / "shape.safetensors")


def write_empty(tmp_path) -> str:
    (tmp_path / "empty.pth").write_bytes(b"")
    return str(tmp_path / "empty.pth")


def write_truncated_safetensors(tmp_path) -> str:
    safetensors.torch.save_file(torchvision.models.resnet18().state_dict(), tmp_path / "whole.safetensors")
    data = (tmp_path / "whole.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    return str(tmp_path / "truncated.safetensors")


@pytest.mark.parametrize("write, error, texts", [
    (write_resnet50, CheckpointMismatchError, [
        "checkpoint {path} (torchvision format) does not match the model", "165 unexpected keys: layer1.0.conv3.weight",
        "layer1.0.conv1.weight (checkpoint (64, 64, 1, 1), model (64, 64, 3, 3))",
        "The checkpoint is a ResNet of bottleneck blocks 3-4-6-3, the model one of basic blocks 2-2-2-2"]),
    (write_mlp, CheckpointError, [
        "cannot load {path}: not a ResNet checkpoint: found keys 0.weight, 0.bias, 2.weight, 2.bias; expected a "
        "ResNet's (torchvision conv1.weight"]),
    (write_integer_safetensors, CheckpointMismatchError, [
        "checkpoint {path} (torchvision format)", "conv1.weight (checkpoint int64, model float32)",
        "Integer or boolean tensors cannot be weights"]),
    (write_wrong_shape_safetensors, CheckpointMismatchError, [
        "checkpoint {path} (torchvision format)",
        "1 shape or dtype mismatches: conv1.weight (checkpoint (64, 3, 3, 3), model (64, 3, 7, 7))"]),
    (write_empty, CheckpointError, ["cannot read checkpoint {path}: the file is empty (0 bytes)"]),
    (write_truncated_safetensors, CheckpointError, ["cannot read checkpoint {path} (truncated, or not a checkpoint): "
                                                    "Error while deserializing header"]),
], ids=["resnet50_into_resnet18", "mlp", "int64_safetensors", "wrong_shape_safetensors", "empty", "truncated"])
def test_wrong_weights_file_is_named_with_what_was_found_and_expected(write, error, texts, tmp_path):
    path = write(tmp_path)
    with pytest.raises(error) as raised:
        backbones.create_backbone("resnet18", pretrained=path)
    assert isinstance(raised.value, ValueError)
    for text in texts:
        assert text.format(path=path) in str(raised.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_precisions_are_converted_with_a_note(dtype, tmp_path, caplog):
    source = randomised(torchvision.models.resnet18()).state_dict()
    stored = {k: v.to(dtype) if v.is_floating_point() else v for k, v in source.items()}
    safetensors.torch.save_file(stored, tmp_path / "model.safetensors")
    with caplog.at_level(logging.INFO, logger="backbones.weights.loading"):
        model = backbones.create_backbone("resnet18", pretrained=tmp_path / "model.safetensors")
    name = str(dtype).removeprefix("torch.")
    assert re.search(rf"model.safetensors: converting \d+ tensors from {name} to float32", caplog.text)
    for key, value in tensors(model).items():
        assert value.dtype == torch.float32 and torch.equal(value, stored[key].float()), key


def test_integer_tensors_are_left_out_when_not_strict(tmp_path):
    model = torchvision.models.resnet18()
    fresh = model.conv1.weight.clone()
    report = load_weights(model, write_integer_safetensors(tmp_path), strict=False)
    assert "conv1.weight" in report["mismatched"] and torch.equal(model.conv1.weight, fresh)
