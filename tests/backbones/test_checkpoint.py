"""Checkpoints of every supported format load into our ResNets and reproduce the original model's outputs."""
import argparse
import logging
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import backbones
from backbones.checkpoint import BN_EPS, CheckpointMismatchError, convert_state_dict, load_weights, read_checkpoint
from backbones.safe_pickle import load_pickle

D2_MODULES = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "bn1": "conv1.norm", "bn2": "conv2.norm",
              "bn3": "conv3.norm", "downsample.0": "shortcut", "downsample.1": "shortcut.norm"}
C2_MODULES = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "bn1": "branch2a_bn",
              "bn2": "branch2b_bn", "bn3": "branch2c_bn", "downsample.0": "branch1", "downsample.1": "branch1_bn"}
DETECTOR_HEADS = {
    "d2_fpn": ("backbone.fpn_lateral2.weight", "backbone.top_block.p6.weight",
               "proposal_generator.rpn_head.conv.weight", "roi_heads.box_head.fc1.weight"),
    "d2_c4": ("proposal_generator.rpn_head.conv.weight", "roi_heads.box_predictor.cls_score.weight"),
    "tv_fpn": ("backbone.fpn.inner_blocks.0.0.weight", "rpn.head.conv.0.0.weight", "roi_heads.box_head.fc6.weight"),
}


def randomised(model: nn.Module) -> nn.Module:
    """Gives every BatchNorm random weights and statistics, so that a loader dropping any of them is caught."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.2, generator=generator)
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


def image() -> torch.Tensor:
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(image())


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def split_key(key: str) -> tuple[str, str, str]:
    """`layer1.0.downsample.1.weight` -> ("res2_0" stage and block, "downsample.1" module, "weight" parameter)."""
    module, param = key.rsplit(".", 1)
    layer, block, name = module.split(".", 2)
    return f"{int(layer.removeprefix('layer')) + 1}_{block}", name, param


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


def to_caffe2(state_dict: dict[str, torch.Tensor], classifier: str = "pred") -> dict[str, np.ndarray]:
    """Renames a torchvision state dict to the MSRA Caffe2 names, folding every BatchNorm into its affine s, b."""
    blobs = {f"{classifier}_w": state_dict["fc.weight"], f"{classifier}_b": state_dict["fc.bias"],
             "conv1_w": state_dict["conv1.weight"]}
    norms = {"bn1": "res_conv1_bn"}
    for key in state_dict:
        if key.startswith("layer") and key.endswith(".weight"):
            stage_block, module, _ = split_key(key)
            name = f"res{stage_block}_{C2_MODULES[module]}"
            if name.endswith("_bn"):
                norms[key.removesuffix(".weight")] = name
            else:
                blobs[name + "_w"] = state_dict[key]
    for module, name in norms.items():
        scale = state_dict[f"{module}.weight"] / torch.sqrt(state_dict[f"{module}.running_var"] + BN_EPS)
        blobs[name + "_s"] = scale
        blobs[name + "_b"] = state_dict[f"{module}.bias"] - state_dict[f"{module}.running_mean"] * scale
    return {k: v.detach().numpy().copy() for k, v in blobs.items()}


def save_pickle(obj: object, path: os.PathLike, protocol: int = pickle.HIGHEST_PROTOCOL) -> str:
    with open(path, "wb") as file:
        pickle.dump(obj, file, protocol=protocol)
    return str(path)


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


def write_mmpretrain(sd: dict, tmp_path) -> str:
    mm = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in sd.items()}
    return save_torch({"state_dict": mm, "meta": {}}, tmp_path / "mmpretrain.pth")


@pytest.mark.parametrize("write, format_name, tolerance", [
    (write_torchvision, "torchvision", 1e-5),
    (write_torchvision_training, "torchvision", 1e-5),
    (write_detectron2, "detectron2", 1e-5),
    (write_caffe2, "caffe2", 1e-4),
    (write_detectron_blobs, "caffe2", 1e-4),
    (write_mmpretrain, "mmpretrain", 1e-5),
])
def test_format_round_trip(write, format_name, tolerance, tmp_path):
    source = randomised(torchvision.models.resnet18())
    path = write(source.state_dict(), tmp_path)
    model = torchvision.models.resnet18()
    report = load_weights(model, path)
    assert report == dict(format=format_name, missing=[], unexpected=[], mismatched=[], dropped=[])
    assert max_diff(logits(model), logits(source)) <= tolerance


def test_timm_safetensors_round_trip(tmp_path):
    source = randomised(timm.create_model("resnet18"))
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(source.state_dict(), path)
    model = torchvision.models.resnet18()
    assert load_weights(model, path)["format"] == "torchvision"
    assert max_diff(logits(model), logits(source)) <= 1e-5


def detector_checkpoint(layout: str, sd: dict) -> dict:
    backbone = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if layout == "tv_fpn":
        ckpt = {"backbone.body." + k: v for k, v in backbone.items()}
    else:
        d2 = to_detectron2(backbone)
        prefix = "backbone.bottom_up." if layout == "d2_fpn" else "backbone."
        ckpt = {("roi_heads." if k.startswith("res5.") and layout == "d2_c4" else prefix) + k: v for k, v in d2.items()}
    return {**ckpt, **{k: torch.zeros(4, 4) for k in DETECTOR_HEADS[layout]}}


@pytest.mark.parametrize("layout, format_name", [("d2_fpn", "detectron2"), ("d2_c4", "detectron2"),
                                                 ("tv_fpn", "torchvision")])
def test_detector_backbone_loads_without_heads(layout, format_name, tmp_path, caplog):
    source = randomised(torchvision.models.resnet18())
    path = save_torch({"model": detector_checkpoint(layout, source.state_dict())}, tmp_path / "detector.pth")
    model = torchvision.models.resnet18()
    fresh_fc = model.fc.weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_weights(model, path)
    assert report["format"] == format_name
    assert report["missing"] == ["fc.weight", "fc.bias"] and report["unexpected"] == []
    assert "has no classifier" in caplog.text
    assert torch.equal(model.fc.weight, fresh_fc)
    loaded, expected = tensors(model), tensors(source)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected if not k.startswith("fc."))


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_parity_with_torchvision(name):
    reference = randomised(getattr(torchvision.models, name)())
    model = backbones.create_backbone(name)
    load_weights(model, reference.state_dict())
    assert max_diff(logits(model), logits(reference)) <= 1e-5


def test_parity_with_timm():
    reference = randomised(timm.create_model("resnet50"))
    model = backbones.create_backbone("resnet50")
    load_weights(model, reference.state_dict())
    assert max_diff(logits(model), logits(reference)) <= 1e-5


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
