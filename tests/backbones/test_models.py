"""One family of tests over every registered backbone, in the manner of timm's tests/test_models.py."""
import pytest
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FrozenBatchNorm2d

import backbones

ALL = backbones.list_backbones()
# The 101-layer ResNeXt 32x8d / 64x4d and wide ResNet (83-127M parameters) take 5-25 s per test on 2 CPU cores; their
# blocks are those of resnext50_32x4d, resnext101_32x4d and wide_resnet50_2, which run every test, and their shapes
# are checked by feature_info below and by the parameter counts (tests/backbones/test_registry.py).
HEAVY = {"resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"}
# the 1202- and 1001-layer nets are covered by the cheap structural tests and by grad checkpointing; their
# forward/backward is slow
FAST = [n for n in ALL if n not in ("resnet1202_cifar", "preact_resnet1001_cifar") and n not in HEAVY]
# Scripting and fx tracing compile or trace every block; the 101- and 152-layer ImageNet nets repeat the blocks of
# their 50-layer siblings (resnet50, resnetv2_50, resnext50_32x4d), which run those tests.
DEEPER_SIBLINGS = {"resnet101", "resnet152", "resnetv2_101", "resnetv2_152", "resnext101_32x4d"}
COMPILED = [n for n in FAST if n not in DEEPER_SIBLINGS]
GRAD_CHECKPOINTED = ["resnet18", "resnet50", "resnext50_32x4d", "plain18", "resnet20_cifar", "resnet1202_cifar",
                     "resnetv2_18", "preact_resnet164_cifar", "preact_resnet1001_cifar"]
# The most of a training step's activation memory that checkpointing keeps (0.6 where not named): the block inputs,
# with what the stem and the head keep; the 64 px stem of resnet18 and plain18 keeps a large part (they keep 0.54 and
# 0.56). Without checkpointing a CIFAR basic block keeps 4 maps of its input's size, a pre-activation bottleneck 3 (its
# reduced maps count a quarter each); with it the input only: the quarter and the third the README states.
KEPT_SHARE = {"resnet1202_cifar": 0.26, "preact_resnet1001_cifar": 0.34}
# the features_only wrappers (FeatureExtractor, PreActFeatures) over basic and bottleneck blocks and both stems
FEATURES_CHECKPOINTED = ["resnet18", "resnet50", "plain18", "resnet20_cifar", "resnetv2_18"]


def input_for(name: str, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    size = 32 if name.endswith("_cifar") else 64
    return torch.randn(batch, 3, size, size)


def features_only_of(name: str, model: nn.Module, exact: bool = True) -> nn.Module:
    """The features-only form of backbone `name` with `model`'s weights, in eval; `exact`: BatchNorm folding off
    where it has it, so that its maps are the modules' to the bit."""
    features = backbones.create_backbone(name, features_only=True)
    features.load_state_dict(model.state_dict(), strict=False)
    if exact and hasattr(features, "set_fused"):
        features.set_fused(False)
    return features.eval()


def assert_maps_equal(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(g, w), index


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


@pytest.mark.parametrize("name", [n for n in ALL if n not in HEAVY])
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
        stem_has_no_norm = frozen == 0 and not hasattr(model, "bn1")  # pre-activation nets
        assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) > 0 or frozen == -1 or stem_has_no_norm


@pytest.mark.parametrize("name,features_only",
                         [(n, False) for n in GRAD_CHECKPOINTED] + [(n, True) for n in FEATURES_CHECKPOINTED],
                         ids=lambda v: {False: "classifier", True: "features_only"}.get(v, v))
def test_grad_checkpointing_recomputes_each_block_keeps_less_and_changes_nothing(name, features_only, train_step):
    kwargs = dict(features_only=True) if features_only else dict(num_classes=4)
    reference = backbones.create_backbone(name, **kwargs).train()
    checkpointed = backbones.create_backbone(name, **kwargs).train()
    checkpointed.load_state_dict(reference.state_dict())
    for model in (reference, checkpointed):
        if hasattr(model, "set_fused"):
            model.set_fused(False)  # the fused path: tests/backbones/test_fuse.py
    checkpointed.set_grad_checkpointing()
    x = input_for(name, batch=2)
    plain, recomputed = train_step(reference, x), train_step(checkpointed, x)
    assert set(plain.block_calls.values()) == {1} and set(recomputed.block_calls.values()) == {2}
    assert recomputed.kept_bytes < KEPT_SHARE.get(name, 0.6) * plain.kept_bytes, (recomputed.kept_bytes,
                                                                                   plain.kept_bytes)
    torch.testing.assert_close(recomputed.output, plain.output, rtol=0, atol=1e-5)
    for (pname, p_ref), (_, p_ck) in zip(reference.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(p_ck.grad, p_ref.grad, rtol=1e-4, atol=1e-5, msg=pname)
    for (bname, b_ref), (_, b_ck) in zip(reference.named_buffers(), checkpointed.named_buffers()):
        assert torch.equal(b_ck, b_ref), bname


@pytest.mark.parametrize("name", FAST)
def test_forward_intermediates_are_the_features_only_maps(name):
    model = backbones.create_backbone(name).eval()
    x = input_for(name, batch=1)
    with torch.no_grad():
        expected = features_only_of(name, model)(x)
        final, maps = model.forward_intermediates(x)
        assert_maps_equal(maps, expected)
        assert torch.equal(final, model.forward_features(x))
        assert_maps_equal(model.forward_intermediates(x, indices=2, intermediates_only=True), expected[-2:])


@pytest.mark.parametrize("name", COMPILED)
def test_fx_feature_extractor_gives_the_features_only_maps(name):
    model = backbones.create_backbone(name).eval()
    return_nodes = {module: str(i) for i, module in enumerate(model.feature_info.module_name())}
    extractor = create_feature_extractor(model, return_nodes=return_nodes)
    x = input_for(name, batch=1)
    with torch.no_grad():
        maps = extractor(x)
        assert_maps_equal([maps[str(i)] for i in range(len(maps))], features_only_of(name, model)(x))


# scripting compiles every block: the 1001- / 1202-layer and HEAVY nets (see FAST) take minutes, their blocks are
# those of nets tested here (see COMPILED)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", COMPILED)
def test_torchscript_gives_the_eager_outputs(name):
    model = backbones.create_backbone(name, num_classes=5).eval()
    features = features_only_of(name, model, exact=False)
    x = input_for(name, batch=1)
    with torch.no_grad():
        assert torch.equal(torch.jit.script(model)(x), model(x))
        scripted = torch.jit.script(features)(x)
        default = features(x)  # BatchNorm folded where the model folds it: the same maps to float rounding
        if hasattr(features, "set_fused"):
            features.set_fused(False)
        assert_maps_equal(scripted, features(x))
    for got, want in zip(scripted, default):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()
