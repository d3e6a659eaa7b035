"""timm's `forward_intermediates` / `prune_intermediate_layers` on our ResNet: timm's semantics, timm's maps."""
import pytest
import timm
import torch
from torch import nn

import backbones
from backbones.features import feature_take_indices


@pytest.fixture(scope="module")
def resnet18_pair():
    """Our resnet18 and timm's with the same weights, in eval."""
    torch.manual_seed(0)
    ours = backbones.create_backbone("resnet18").eval()
    theirs = timm.create_model("resnet18", pretrained=False).eval()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def all_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return model.forward_intermediates(x, intermediates_only=True)


@pytest.mark.parametrize("options", [
    dict(), dict(indices=2), dict(indices=[-1, 0]), dict(indices=[3, 1, 3]), dict(indices=[1], stop_early=True),
    dict(indices=5, intermediates_only=True), dict(indices=(0,), stop_early=True),
])
def test_forward_intermediates_match_timms(resnet18_pair, options):
    ours, theirs = resnet18_pair
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, want = ours.forward_intermediates(x, **options), theirs.forward_intermediates(x, **options)
    if options.get("intermediates_only"):
        got, want = (None, got), (None, want)
    else:
        assert torch.equal(got[0], want[0])
    assert len(got[1]) == len(want[1])
    for g, w in zip(got[1], want[1]):
        assert torch.equal(g, w)


def test_int_indices_take_the_last_maps_and_negative_ones_count_from_the_end():
    model = backbones.create_backbone("resnet20_cifar").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = all_maps(model, x)
        assert len(maps) == len(model.feature_info) == 4
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        ends = model.forward_intermediates(x, indices=[-1, 0], intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(last_two, maps[2:]))
    assert len(ends) == 2 and torch.equal(ends[0], maps[0]) and torch.equal(ends[1], maps[3])  # forward order


def test_stop_early_returns_the_last_map_computed():
    model = backbones.create_backbone("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = all_maps(model, x)
        final, taken = model.forward_intermediates(x, indices=[1], stop_early=True)
    assert torch.equal(final, maps[1]) and len(taken) == 1 and torch.equal(taken[0], maps[1])


@pytest.mark.parametrize("options, message", [
    (dict(indices=0), "last 0 maps"), (dict(indices=6), "last 6 maps"), (dict(indices=[5]), "contains 5"),
    (dict(indices=[-6]), "contains -6"), (dict(indices=[]), "empty"), (dict(output_fmt="NHWC"), "NCHW"),
])
def test_bad_arguments_raise_naming_them(options, message):
    model = backbones.create_backbone("resnet18")
    with pytest.raises(ValueError, match=message):
        model.forward_intermediates(torch.randn(1, 3, 32, 32), **options)


def test_take_indices_keep_order_and_repeats_as_timms():
    assert feature_take_indices(5, [3, -4, 3]) == ([3, 1, 3], 3)
    assert feature_take_indices(5, None) == ([0, 1, 2, 3, 4], 4)
    assert feature_take_indices(4, 1) == ([3], 3)


@pytest.mark.parametrize("indices, prune_head", [((1, 2), True), (1, True), (1, False), ((0,), True), (3, False)])
def test_pruning_keeps_the_maps_and_returns_timms_indices(resnet18_pair, indices, prune_head):
    ours, theirs = resnet18_pair
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = all_maps(ours, x)
        pruned = backbones.create_backbone("resnet18").eval()
        pruned.load_state_dict(ours.state_dict())
        kept = pruned.prune_intermediate_layers(indices, prune_head=prune_head)
        twin = timm.create_model("resnet18", pretrained=False).eval()
        twin.load_state_dict(ours.state_dict())
        assert kept == twin.prune_intermediate_layers(indices, prune_head=prune_head)
        maps = pruned.forward_intermediates(x, indices=kept, intermediates_only=True)
        assert all(torch.equal(m, before[i]) for m, i in zip(maps, sorted(set(kept))))
        assert torch.equal(pruned(x), twin(x))
    max_index = max(kept)
    assert [len(getattr(pruned, f"layer{i}")) == 0 for i in range(1, 5)] == [i > max_index for i in range(1, 5)]
    assert isinstance(pruned.maxpool, nn.Identity) == (max_index == 0)
    assert pruned.num_features == pruned.feature_info.channels(max_index) == twin.num_features
    head_gone = prune_head or max_index < 4
    assert (pruned.num_classes == 0 and isinstance(pruned.fc, nn.Identity)) == head_gone
    if head_gone:
        features = torch.randn(1, pruned.num_features, 2, 2)
        assert torch.equal(pruned.forward_head(features), features)
