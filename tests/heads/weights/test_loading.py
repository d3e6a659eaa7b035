"""Backbone weights load into the whole ResNet before it is cut; detector checkpoints load or say what is wrong."""
import logging

import pytest
import safetensors.torch
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

import backbones
import heads
from backbones import CheckpointError, CheckpointMismatchError


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A randomly initialised torchvision resnet18 with random BN statistics, saved as torchvision does."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def norms_of(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]


@pytest.mark.parametrize("wrapped", [False, True], ids=["torchvision", "classification_checkpoint"])
@pytest.mark.parametrize("neck", ["fpn", "c4"])
def test_backbone_weights_load_frozen(neck, wrapped, resnet18_file, tmp_path, fast_options):
    path, state_dict = resnet18_file
    if wrapped:
        path = tmp_path / "checkpoint.pth"
        torch.save({"model": state_dict, "epoch": 3}, path)
    model = heads.mask_rcnn("resnet18", num_classes=3, backbone_weights=path, **fast_options("mask_rcnn", neck))
    body = model.backbone.body
    assert torch.equal(body.layer2[0].conv1.weight, state_dict["layer2.0.conv1.weight"])
    assert torch.equal(body.layer3[1].bn2.running_mean, state_dict["layer3.1.bn2.running_mean"])
    if neck == "c4":
        res5 = model.roi_heads.box_head.res5
        assert torch.equal(res5[1].conv2.weight, state_dict["layer4.1.conv2.weight"])
        assert all(isinstance(m, FrozenBatchNorm2d) for m in norms_of(res5))
    assert all(isinstance(m, FrozenBatchNorm2d) for m in norms_of(body))
    frozen = [body.conv1, body.layer1]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())


def test_from_scratch_batchnorm_is_trainable(fast_options):
    model = heads.faster_rcnn("resnet18", num_classes=3, **fast_options("faster_rcnn", "c4"))
    modules = [model.backbone.body, model.roi_heads.box_head]
    assert all(type(m) is nn.BatchNorm2d for module in modules for m in norms_of(module))
    assert all(p.requires_grad for p in model.parameters())


def test_norm_and_frozen_stages_override_the_defaults(resnet18_file, fast_options):
    model = heads.faster_rcnn("resnet18", num_classes=3, backbone_weights=resnet18_file[0], norm="bn",
                              frozen_stages=-1, **fast_options("faster_rcnn", "fpn"))
    assert all(type(m) is nn.BatchNorm2d for m in norms_of(model.backbone.body))
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.module."], ids=["plain", "ddp", "compiled_ddp"])
@pytest.mark.parametrize("kind,neck", [("faster_rcnn", "fpn"), ("mask_rcnn", "c4")])
def test_own_checkpoint_round_trip(kind, neck, prefix, tmp_path, fast_options):
    torch.manual_seed(0)
    trained = heads.build_detector(kind, backbone="resnet18", num_classes=3, **fast_options(kind, neck))
    path = tmp_path / "model.pth"
    torch.save({"model": {prefix + k: v for k, v in trained.state_dict().items()}, "iteration": 10}, path)
    loaded = heads.build_detector(kind, backbone="resnet18", num_classes=3, weights=path, **fast_options(kind, neck))
    expected = trained.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_legacy_mask_head_names_load(tmp_path, fast_options):
    options = fast_options("mask_rcnn", "fpn")
    source = heads.mask_rcnn("resnet18", num_classes=3, **options).state_dict()
    legacy = {k.replace(f"mask_head.{i}.0.", f"mask_head.mask_fcn{i + 1}."): v
              for k, v in source.items() for i in [int(k.split(".")[2]) if ".mask_head." in k else -1]}
    assert "roi_heads.mask_head.mask_fcn1.weight" in legacy
    torch.save(legacy, tmp_path / "legacy.pth")
    model = heads.mask_rcnn("resnet18", num_classes=3, weights=tmp_path / "legacy.pth", **options)
    assert torch.equal(model.roi_heads.mask_head[1][0].weight, source["roi_heads.mask_head.1.0.weight"])


def test_mismatching_checkpoint_raises_naming_the_keys(tmp_path, fast_options):
    options = fast_options("faster_rcnn", "fpn")
    state_dict = heads.faster_rcnn("resnet18", num_classes=3, **options).state_dict()
    del state_dict["rpn.head.conv.0.0.weight"]
    state_dict["roi_heads.box_head.fc8.weight"] = torch.zeros(1)
    state_dict["backbone.fpn.layer_blocks.0.0.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state_dict, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as error:
        heads.faster_rcnn("resnet18", num_classes=5, weights=tmp_path / "bad.pth", **options)
    message = str(error.value)
    assert "1 missing keys: rpn.head.conv.0.0.weight" in message
    assert "1 unexpected keys: roi_heads.box_head.fc8.weight" in message
    assert "5 shape or dtype mismatches: backbone.fpn.layer_blocks.0.0.weight" in message
    assert "bbox_pred.weight (checkpoint (12, 128), model (20, 128))" in message


def test_other_number_of_classes_drops_only_the_predictors(tmp_path, fast_options, caplog):
    options = fast_options("mask_rcnn", "fpn")
    source = heads.mask_rcnn("resnet18", num_classes=3, **options).state_dict()
    torch.save({"model": source}, tmp_path / "model.pth")
    with caplog.at_level(logging.WARNING, logger="heads.weights"):
        model = heads.mask_rcnn("resnet18", num_classes=5, weights=tmp_path / "model.pth", **options)
    assert "number of classes differs" in caplog.text and "mask_fcn_logits.weight" in caplog.text
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    loaded = model.state_dict()
    predictors = ("cls_score", "bbox_pred", "mask_fcn_logits")
    assert all(torch.equal(v, source[k]) for k, v in loaded.items() if not any(p in k for p in predictors))


def write_classification_checkpoint(tmp_path, detector: dict) -> str:
    """What tools/train_cls.py saves: the classifier under "model", with its config and the training state."""
    classifier = backbones.create_backbone("resnet18", num_classes=4).state_dict()
    config = {"model": {"backbone": "resnet18", "num_classes": 4}}
    torch.save({"model": classifier, "optimizer": {}, "iteration": 3, "config": config}, tmp_path / "classifier.pth")
    return str(tmp_path / "classifier.pth")


def write_torchvision_classifier(tmp_path, detector: dict) -> str:
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    return str(tmp_path / "resnet18.pth")


def write_mlp(tmp_path, detector: dict) -> str:
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).state_dict(), tmp_path / "mlp.pth")
    return str(tmp_path / "mlp.pth")


def write_integer_safetensors(tmp_path, detector: dict) -> str:
    safetensors.torch.save_file({k: v.long() for k, v in detector.items()}, tmp_path / "integers.safetensors")
    return str(tmp_path / "integers.safetensors")


def write_truncated(tmp_path, detector: dict) -> str:
    torch.save({"model": detector}, tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    return str(tmp_path / "truncated.pth")


@pytest.mark.parametrize("write, error, texts", [
    (write_classification_checkpoint, CheckpointMismatchError, [
        "{path} is a classifier checkpoint (torchvision format), not a whole detector",
        "found conv1.weight, bn1.weight", "expected backbone.body.conv1.weight",
        "Give it as the backbone's weights instead: model.backbone_weights={path} in a config"]),
    (write_torchvision_classifier, CheckpointMismatchError, ["{path} is a classifier checkpoint (torchvision format)"]),
    (write_mlp, CheckpointMismatchError, [
        "{path} is not a checkpoint of this detector: it holds none of its keys (found 0.weight, 0.bias, 2.weight"]),
    (write_integer_safetensors, CheckpointMismatchError, [
        "detector checkpoint {path} does not match the model",
        "backbone.body.conv1.weight (checkpoint int64, model float32)"]),
    (write_truncated, CheckpointError, ["cannot read checkpoint {path} (truncated, or not a checkpoint)"]),
], ids=["train_cls_checkpoint", "torchvision_classifier", "mlp", "int64_safetensors", "truncated"])
def test_wrong_detector_weights_say_what_the_file_is(write, error, texts, tmp_path, fast_options):
    options = fast_options("faster_rcnn", "fpn")
    path = write(tmp_path, heads.faster_rcnn("resnet18", num_classes=3, **options).state_dict())
    with pytest.raises(error) as raised:
        heads.faster_rcnn("resnet18", num_classes=3, weights=path, **options)
    assert isinstance(raised.value, ValueError)
    for text in texts:
        assert text.format(path=path) in str(raised.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_detector_loads_converted(dtype, tmp_path, fast_options, caplog):
    options = fast_options("faster_rcnn", "fpn")
    source = heads.faster_rcnn("resnet18", num_classes=3, **options).state_dict()
    stored = {k: v.to(dtype) if v.is_floating_point() else v for k, v in source.items()}
    safetensors.torch.save_file(stored, tmp_path / "model.safetensors")
    with caplog.at_level(logging.INFO):
        model = heads.faster_rcnn("resnet18", num_classes=3, weights=tmp_path / "model.safetensors", **options)
    name = str(dtype).removeprefix("torch.")
    assert f"model.safetensors: converting 130 tensors from {name} to float32" in caplog.text
    assert all(torch.equal(v, stored[k].float()) for k, v in model.state_dict().items() if v.is_floating_point())
