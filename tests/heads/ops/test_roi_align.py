"""Our CPU RoIAlign gives torchvision's pooled RoIs and input gradients, alone and as MultiScaleRoIAlign; inference
and the cases it leaves to torchvision are torchvision's."""
import copy
import pickle

import pytest
import torch
import torchvision

from heads.ops.roi_align import MultiScaleRoIAlign, roi_align

# (batch index, x1, y1, x2, y2) in pixels of a 20x24 map: inside, partly outside (top-left, bottom-right), zero-size,
# zero-width, the whole map, wholly outside, sub-pixel
MAP_BOXES = torch.tensor([
    [0, 2.0, 3.0, 15.0, 12.0], [1, -6.0, -4.0, 8.0, 9.0], [1, 18.0, 14.0, 30.0, 26.0], [0, 5.0, 5.0, 5.0, 5.0],
    [1, 10.3, 7.7, 10.3, 12.1], [0, 0.5, 0.5, 23.5, 19.5], [1, -30.0, -30.0, -25.0, -25.0], [0, 3.2, 4.9, 4.1, 5.3],
])


def boxes_for(spatial_scale: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """MAP_BOXES in image coordinates for a map at `spatial_scale`."""
    boxes = MAP_BOXES.clone()
    boxes[:, 1:] /= spatial_scale
    return boxes.to(dtype)


def pooled_and_grad(pool, features, *args):
    """The pooled RoIs and the gradient of `features` for a fixed output gradient."""
    features = features.detach().requires_grad_()
    pooled = pool(features, *args)
    output_grad = torch.linspace(-1, 1, pooled.numel(), dtype=pooled.dtype).view_as(pooled)
    return pooled, torch.autograd.grad(pooled, features, output_grad, materialize_grads=True)[0]


@pytest.fixture
def without_torchvision_kernel(monkeypatch):
    """Makes `torchvision.ops.roi_align` fail, so that a test sees our kernel run."""
    def fail(*args, **kwargs):
        raise AssertionError("torchvision's roi_align ran")
    return lambda: monkeypatch.setattr(torchvision.ops, "roi_align", fail)


def assert_same(actual, expected):
    """Pooled RoIs and gradients equal within 1e-5."""
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2])
@pytest.mark.parametrize("output_size", [7, 14])
@pytest.mark.parametrize("spatial_scale", [1.0, 1 / 4, 1 / 32])
def test_roi_align_matches_torchvision(aligned, sampling_ratio, output_size, spatial_scale, without_torchvision_kernel):
    features = torch.randn(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    args = (boxes_for(spatial_scale), output_size, spatial_scale, sampling_ratio, aligned)
    expected = pooled_and_grad(torchvision.ops.roi_align, features, *args)
    without_torchvision_kernel()
    assert_same(pooled_and_grad(roi_align, features, *args), expected)


def test_list_of_boxes_float64_and_channels_last_maps(without_torchvision_kernel):
    features = torch.randn(2, 3, 20, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    boxes = boxes_for(1 / 4, torch.float64)
    per_image = [boxes[boxes[:, 0] == i, 1:] for i in range(2)]
    expected = pooled_and_grad(torchvision.ops.roi_align, features, per_image, (7, 5), 1 / 4, 2)
    without_torchvision_kernel()
    assert_same(pooled_and_grad(roi_align, features, per_image, (7, 5), 1 / 4, 2), expected)
    channels_last = features.contiguous(memory_format=torch.channels_last)
    assert_same(pooled_and_grad(roi_align, channels_last, per_image, (7, 5), 1 / 4, 2), expected)


def test_no_boxes(without_torchvision_kernel):
    features = torch.randn(2, 3, 20, 24).contiguous(memory_format=torch.channels_last)
    without_torchvision_kernel()
    pooled, grad = pooled_and_grad(roi_align, features, torch.zeros(0, 5), 7, 1.0, 2)
    assert pooled.shape == (0, 3, 7, 7) and not grad.any()
    pooled, grad = pooled_and_grad(roi_align, features, [torch.zeros(0, 4), torch.zeros(0, 4)], 7, 1.0, 2)
    assert pooled.shape == (0, 3, 7, 7) and not grad.any()


@pytest.mark.parametrize("case", ["adaptive sampling", "few boxes on a large map", "float16"])
def test_fallbacks_are_torchvisions_kernel(case, monkeypatch):
    features, boxes, sampling_ratio = torch.randn(2, 3, 20, 24), boxes_for(1 / 4), 2
    if case == "adaptive sampling":
        sampling_ratio = 0
    elif case == "few boxes on a large map":
        features, boxes = torch.randn(2, 3, 200, 240), boxes[:1]
    else:
        features = features.half()
    args = (boxes.to(features.dtype), 7, 1 / 4, sampling_ratio)
    expected = pooled_and_grad(torchvision.ops.roi_align, features, *args)
    calls = []
    kernel = torchvision.ops.roi_align
    monkeypatch.setattr(torchvision.ops, "roi_align", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    assert_same(pooled_and_grad(roi_align, features, *args), expected)
    assert calls == [1]


def test_inference_is_torchvision_bit_for_bit():
    features, boxes = torch.randn(2, 3, 20, 24), boxes_for(1 / 4)
    with torch.no_grad():
        expected = torchvision.ops.roi_align(features, boxes, 7, 1 / 4, 2)
        assert torch.equal(roi_align(features, boxes, 7, 1 / 4, 2), expected)
        maps, image_boxes = {"0": features}, [boxes[:, 1:]]
        ours, reference = MultiScaleRoIAlign(["0"], 7, 2), torchvision.ops.MultiScaleRoIAlign(["0"], 7, 2)
        assert torch.equal(ours(maps, image_boxes, [(80, 96)]), reference(maps, image_boxes, [(80, 96)]))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("output_size", [7, 14])
def test_multiscale_roi_align_matches_torchvision_on_four_levels(output_size, channels_last,
                                                                 without_torchvision_kernel):
    generator = torch.Generator().manual_seed(0)
    names, image_shapes = ["0", "1", "2", "3"], [(128, 160), (120, 160)]
    features = {name: torch.randn(2, 8, 128 >> level, 160 >> level, generator=generator)
                for level, name in enumerate(names, start=2)}
    features["pool"] = torch.randn(2, 8, 2, 3, generator=generator)  # not pooled
    sides = torch.exp(torch.empty(2, 24, 2).uniform_(2.0, 5.0, generator=generator))  # 7 to 150 pixels
    corners = torch.rand(2, 24, 2, generator=generator) * 150 - 10
    boxes = [torch.cat([c, c + s], dim=1) for c, s in zip(corners, sides)]
    # canonical scale 56: boxes under 28 pixels pool from P2, from 112 on from P5
    ours = MultiScaleRoIAlign(names, output_size, 2, canonical_scale=56, channels_last=channels_last)
    reference = torchvision.ops.MultiScaleRoIAlign(names, output_size, 2, canonical_scale=56)
    layout = torch.channels_last if channels_last else torch.contiguous_format  # as a detector's fast inference
    maps = {name: level.contiguous(memory_format=layout).requires_grad_() for name, level in features.items()}

    def pooled_and_grads(pooler):
        pooled = pooler(maps, boxes, image_shapes)
        output_grad = torch.linspace(-1, 1, pooled.numel()).view_as(pooled)
        return pooled, *torch.autograd.grad(pooled, list(maps.values()), output_grad, materialize_grads=True)

    expected = pooled_and_grads(reference)
    assert len(set(reference.map_levels(boxes).tolist())) == 4
    without_torchvision_kernel()
    actual = pooled_and_grads(ours)
    assert_same(actual, expected)
    assert ours.scales == reference.scales
    assert actual[0].is_contiguous(memory_format=layout)


def test_multiscale_roi_align_is_a_drop_in():
    pooler = MultiScaleRoIAlign(["0", "1"], (7, 7), 2, canonical_scale=112)
    assert isinstance(pooler, torchvision.ops.MultiScaleRoIAlign)
    assert not pooler.state_dict()
    for twin in (copy.deepcopy(pooler), pickle.loads(pickle.dumps(pooler))):
        assert type(twin) is MultiScaleRoIAlign and repr(twin) == repr(pooler) and twin.canonical_scale == 112
