"""One family of tests over every registered backbone, in the manner of timm's tests/test_models.py."""
import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

import backbones

ALL = backbones.list_backbones()
# the 1202-layer net is covered by the cheap structural tests and by grad checkpointing; its forward/backward is slow
FAST = [n for n in ALL if n != "resnet1202_cifar"]


def input_for(name: str, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    size = 32 if name.endswith("_cifar") else 64
    return torch.randn(batch, 3, size, size)


@pytest.mark.parametrize("name", FAST)
def test_forward_gives_logits(name):
    model = backbones.create_backbone(name, num_classes=7).eval()
    assert model(input_for(name)).shape == (2, 7)


@pytest.mark.parametrize("name", FAST)
def test_backward_reaches_every_parameter(name):
    model = backbones.create_backbone(name, num_classes=5).train()
    model(input_for(name)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", ALL)
def test_feature_info_matches_real_shapes(name):
    model = backbones.create_backbone(name, features_only=True).eval()
    x = input_for(name, batch=1)
    with torch.no_grad():
        maps = model(x)
    assert [m.shape[1] for m in maps] == model.feature_info.channels()
    assert [x.shape[-1] // m.shape[-1] for m in maps] == model.feature_info.reduction()


@pytest.mark.parametrize("name", FAST)
def test_timm_model_contract(name):
    model = backbones.create_backbone(name).eval()
    x = input_for(name)
    cfg = model.pretrained_cfg
    for key in ("input_size", "pool_size", "mean", "std", "first_conv", "classifier", "num_classes"):
        assert key in cfg
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1] == model.num_features
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
        assert model.forward_head(features).shape == (2, model.num_classes)
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)
        model.reset_classifier(0, global_pool="")
        assert torch.equal(model(x), features)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3


@pytest.mark.parametrize("name", ALL)
def test_frozen_stages_leave_exactly_the_later_stages_trainable(name):
    num_stages = len(backbones.create_backbone(name, features_only=True).feature_info) - 1
    for frozen in range(-1, num_stages + 1):
        model = backbones.create_backbone(name, frozen_stages=frozen)
        frozen_prefixes = (["conv1.", "bn1."] if frozen >= 0 else []) + [f"layer{i}." for i in range(1, frozen + 1)]
        for pname, param in model.named_parameters():
            assert param.requires_grad != pname.startswith(tuple(frozen_prefixes)), (frozen, pname)
        for mname, module in model.named_modules():
            if mname.startswith(tuple(frozen_prefixes)) or mname + "." in frozen_prefixes:
                assert not isinstance(module, nn.BatchNorm2d), (frozen, mname)
        assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) > 0 or frozen == -1


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "plain18", "resnet20_cifar", "resnet1202_cifar"])
def test_grad_checkpointing_changes_nothing(name):
    reference = backbones.create_backbone(name, num_classes=4).train()
    checkpointed = backbones.create_backbone(name, num_classes=4).train()
    checkpointed.load_state_dict(reference.state_dict())
    checkpointed.set_grad_checkpointing()
    x = input_for(name, batch=2)
    outputs = [m(x) for m in (reference, checkpointed)]
    for out in outputs:
        out.square().sum().backward()
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-5)
    for (pname, p_ref), (_, p_ck) in zip(reference.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(p_ck.grad, p_ref.grad, rtol=1e-4, atol=1e-5, msg=pname)
    for (bname, b_ref), (_, b_ck) in zip(reference.named_buffers(), checkpointed.named_buffers()):
        assert torch.equal(b_ck, b_ref), bname
