"""The fused path of `features_only` models (BatchNorm folded into the convolutions, oneDNN post-ops, channels_last)
against the unfused one: the same maps within 1e-5 relative, the same gradients, the same state dict."""
import copy
import pickle

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

import backbones
from backbones.fuse import FusedStages, foldable, folded_weight_and_bias

ARCHITECTURES = [
    ("resnet50", {}),
    ("resnet18", {}),
    ("resnet50", {"style": "caffe", "output_stride": 16}),
    ("resnet34", {"shortcut": "C", "output_stride": 8}),
    ("resnet20_cifar", {}),  # option A shortcuts, no max pool: layer1 starts from the stem's own (returned) map
    ("plain18", {}),
    ("resnext50_32x4d", {"output_stride": 16}),  # grouped 3x3 convolutions, dilated in the last stage
]


def randomise_statistics(model: torch.nn.Module, seed: int = 1) -> None:
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
            module.weight.data.uniform_(0.5, 1.0)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)


def features(name: str, **kwargs) -> torch.nn.Module:
    model = backbones.create_backbone(name, features_only=True, **kwargs)
    randomise_statistics(model)
    return model


def assert_close_maps(got: list, want: list, rtol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert (g - w).abs().max() <= rtol * w.abs().max(), (g - w).abs().max() / w.abs().max()


def unfused_copy(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model).set_fused(False)


def summed_means(maps: list[torch.Tensor]) -> torch.Tensor:
    return sum(t.mean() for t in maps)


@pytest.mark.parametrize("name,kwargs", ARCHITECTURES, ids=lambda v: str(v))
@pytest.mark.parametrize("norm", ["bn", "frozen_bn"])
def test_fused_eval_equals_unfused(name, kwargs, norm):
    model = features(name, norm=norm, **kwargs).eval()
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = reference(x)
        got = model(x)
        got_again = model(x)  # from the cached folded weights
        got_channels_last = model(x.contiguous(memory_format=torch.channels_last))
    assert_close_maps(got, want)
    assert all(torch.equal(a, b) for a, b in zip(got, got_again))
    assert_close_maps(got_channels_last, want)
    assert model.fused_cache_bytes > 0
    # maps come back in the input's memory format
    assert all(m.is_contiguous() for m in got)
    assert all(m.is_contiguous(memory_format=torch.channels_last) for m in got_channels_last)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_every_path_agrees(channels_last, threads):
    """oneDNN post-ops or plain convolutions (torch's own choice of kernel depends on the thread count), with and
    without channels_last, and with oneDNN switched off."""
    model = features("resnet50", norm="frozen_bn").eval()
    reference = unfused_copy(model)
    model.set_fused(True, channels_last=channels_last)
    x = torch.randn(1, 3, 64, 64)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            want = reference(x)
            assert_close_maps(model(x), want)
            with torch.backends.mkldnn.flags(enabled=False):
                assert_close_maps(model(x), want)
    finally:
        torch.set_num_threads(previous)


def test_stem_map_is_not_overwritten_by_the_inplace_residual():
    """CIFAR nets have no max pool: layer1's identity shortcut is the stem's map, which is also returned."""
    model = features("resnet20_cifar", norm="frozen_bn", out_indices=(0, 1)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        stem, stage1 = model(x)
        want_stem, want_stage1 = unfused_copy(model)(x)
    assert_close_maps([stem, stage1], [want_stem, want_stage1])


@pytest.mark.parametrize("name,kwargs", ARCHITECTURES[:4], ids=lambda v: str(v))
def test_training_with_frozen_stages_matches_unfused(name, kwargs):
    """Frozen stages run folded without gradients, trainable stages fold frozen BN on the fly: the maps and every
    gradient agree with the modules run as they are."""
    model = features(name, norm="frozen_bn", frozen_stages=1, **kwargs).train()
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 64, 64)
    weights = [torch.rand(m.shape, generator=torch.Generator().manual_seed(i)) for i, m in enumerate(reference(x))]
    losses = []
    for m in (model, reference):
        maps = m(x)
        loss = sum((w * t).sum() for w, t in zip(weights, maps))
        loss.backward()
        losses.append((maps, loss))
    assert_close_maps(losses[0][0], losses[1][0])
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    want = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None}
    assert grads.keys() == want.keys() and not any(n.startswith(("conv1", "bn1", "layer1")) for n in grads)
    for n in grads:
        assert (grads[n] - want[n]).abs().max() <= 1e-4 * want[n].abs().max(), n


def test_eval_mode_batchnorm_with_trainable_affine_gets_the_same_gradients():
    model = features("resnet18", norm="bn").eval()  # BN uses running statistics, weight and bias still trainable
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 64, 64)
    for m in (model, reference):
        sum(t.mean() for t in m(x)).backward()
    for (n, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert (p.grad - q.grad).abs().max() <= 1e-4 * q.grad.abs().max(), n


def test_training_batchnorm_is_left_alone():
    """BatchNorm that normalises with batch statistics cannot be folded: the modules run as they are, statistics
    update as without fusion."""
    model = features("resnet18", norm="bn").train()
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 64, 64)
    got, want = model(x), reference(x)
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert torch.equal(model.layer2[0].bn1.running_mean, reference.layer2[0].bn1.running_mean)
    assert model.fused_cache_bytes == 0


def test_group_norm_is_left_alone():
    model = features("resnet18", norm="gn").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(g, w) for g, w in zip(model(x), unfused_copy(model)(x)))


def test_changed_weights_are_refolded():
    model = features("resnet18", norm="frozen_bn").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        other = features("resnet18", norm="frozen_bn")
        randomise_statistics(other, seed=7)
        model.load_state_dict(other.state_dict())
        model.layer3[1].bn2.running_var.mul_(2)  # in place, as an optimiser or an EMA would
        assert_close_maps(model(x), unfused_copy(model)(x))


def test_train_and_eval_drop_the_cache_and_the_state_dict_is_unchanged():
    model = features("resnet18", norm="frozen_bn").eval()
    keys = list(model.state_dict())
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert model.fused_cache_bytes > 0
    assert list(model.state_dict()) == keys
    model.train()
    assert model.fused_cache_bytes == 0
    copied = pickle.loads(pickle.dumps(model))
    assert copied.fused and copied.fused_cache_bytes == 0


# Frozen BatchNorm keeps next to nothing (no batch statistics; the ReLUs are in place), so resnet18's checkpointed
# basic blocks keep about as much as the plain ones (0.95 of it): their inputs, where without checkpointing the returned
# maps are among what is kept
@pytest.mark.parametrize("norm,kept_share", [("bn", 0.5), ("frozen_bn", 1.0)])
def test_grad_checkpointing_still_checkpoints(norm, kept_share, train_step):
    model = features("resnet18", norm=norm, frozen_stages=1).train()
    x = torch.randn(2, 3, 64, 64)
    plain = train_step(model, x, summed_means)
    model.zero_grad()
    model.set_grad_checkpointing(True)
    reference = unfused_copy(model)
    recomputed, _ = train_step(model, x, summed_means), train_step(reference, x, summed_means)
    trainable = [name for name in plain.block_calls if not name.startswith("layer1.")]  # frozen_stages=1
    assert {plain.block_calls[n] for n in trainable} == {1} and {recomputed.block_calls[n] for n in trainable} == {2}
    assert recomputed.kept_bytes < kept_share * plain.kept_bytes, (recomputed.kept_bytes, plain.kept_bytes)
    assert torch.allclose(model.layer4[1].conv2.weight.grad, reference.layer4[1].conv2.weight.grad, rtol=1e-4,
                          atol=1e-7)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_tracing_sees_the_plain_modules():
    model = features("resnet18", norm="frozen_bn").eval()
    traced = torch.jit.trace(model, torch.randn(1, 3, 32, 32), strict=False)
    assert "_convolution_pointwise" not in str(traced.inlined_graph)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_close_maps(traced(x), model(x))


def test_folded_weight_and_bias_match_fuse_batchnorm():
    model = features("resnet18", norm="frozen_bn").eval()
    conv, norm = model.layer2[0].conv1, model.layer2[0].bn1
    assert foldable(norm) and not foldable(torch.nn.BatchNorm2d(4)) and foldable(torch.nn.BatchNorm2d(4).eval())
    weight, bias = folded_weight_and_bias(conv, norm)
    x = torch.randn(1, conv.in_channels, 16, 16)
    with torch.no_grad():
        expected = norm(conv(x))
        got = torch.nn.functional.conv2d(x, weight, bias, conv.stride, conv.padding)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert FusedStages().cached_bytes == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_on_cuda_with_amp_and_channels_last():
    model = features("resnet50", norm="frozen_bn").eval().cuda().to(memory_format=torch.channels_last)
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 128, 128, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert_close_maps(model(x), reference(x))
        with torch.autocast("cuda", dtype=torch.float16):
            got, want = model(x), reference(x)
    assert all(g.is_contiguous(memory_format=torch.channels_last) for g in got)
    assert_close_maps([g.float() for g in got], [w.float() for w in want], rtol=2e-2)
    model.train()
    frozen = features("resnet50", norm="frozen_bn", frozen_stages=1).cuda().train()
    with torch.autocast("cuda", dtype=torch.float16):
        sum(t.float().mean() for t in frozen(x)).backward()
    assert frozen.layer2[0].conv1.weight.grad is not None and frozen.layer1[0].conv1.weight.grad is None
