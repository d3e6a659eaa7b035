"""A detector on a torch without the oneDNN operators and a torchvision without the private helpers it uses
(`_setup_scales`, `_resize_image_and_masks`): the fast path gives the detections of the fast and of the plain path
within the fast path's tolerances, the plain path torchvision's to the bit; the own helpers give torchvision's
results, scripted too."""
import copy
import logging
from unittest import mock

import pytest
import torch
from torchvision.models.detection.transform import _resize_image_and_masks as torchvision_resize
from torchvision.ops import poolers

import heads
from backbones.packed_conv import PackedConv2d
from heads import transform
from heads.ops import roi_align
from heads.ops.pyramid_scales import pyramid_scales
from heads.transform import resize_image_and_masks
from workbench.benchmarks.detector_inference import randomise_batchnorm, realistic_predictors

EXACT = dict(rtol=0, atol=0)
FAST = dict(rtol=1e-4, atol=2e-3)  # tests/heads/test_torchvision_parity.py: folding moves boxes by float rounding


def assert_same_detections(got: list[dict], want: list[dict], tolerances: dict) -> None:
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w) and len(w["scores"]) > 0
        for key in w:
            torch.testing.assert_close(g[key], w[key], **tolerances)


def test_mask_rcnn_without_private_operators_and_helpers(fast_options, drop_onednn, monkeypatch, caplog):
    torch.manual_seed(0)
    options = {**fast_options("mask_rcnn", "fpn"), "min_size": 64, "max_size": 64, "box_score_thresh": 0.0}
    model = heads.mask_rcnn("resnet18", num_classes=3, **options)
    randomise_batchnorm(model)
    realistic_predictors(model)
    model.eval()
    plain = heads.set_fast_inference(copy.deepcopy(model), False)
    images = [torch.rand(3, 64, 80), torch.rand(3, 48, 64)]
    with torch.no_grad():
        fast, exact = model(images), plain(images)

    drop_onednn()
    scales, resize = mock.Mock(wraps=pyramid_scales), mock.Mock(wraps=resize_image_and_masks)
    monkeypatch.setattr(roi_align, "_setup_scales", scales)
    monkeypatch.setattr(transform, "_resize_image_and_masks", resize)
    for pooler in [m for m in [*model.modules(), *plain.modules()] if isinstance(m, roi_align.MultiScaleRoIAlign)]:
        pooler.scales = pooler.map_levels = None  # inferred again, by pyramid_scales
    with caplog.at_level(logging.DEBUG, logger="backbones.capabilities"):
        heads.set_fast_inference(model, True)
    assert "lacks torch.ops.mkldnn._reorder_convolution_weight" in caplog.text
    assert not any(isinstance(m, PackedConv2d) for m in model.modules())
    with torch.no_grad():
        got, got_plain = model(images), plain(images)
    assert scales.call_count == 4 and resize.call_count == 4  # box and mask pooling, two images; in both models
    assert_same_detections(got, fast, FAST)
    assert_same_detections(got, exact, FAST)
    assert_same_detections(got_plain, exact, EXACT)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_own_helpers_give_torchvisions_results_eager_and_scripted():
    maps = [torch.zeros(1, 1, 200 // 2**k, 152 // 2**k) for k in range(2, 6)]
    image_shapes = [(800, 600), (797, 608)]
    for own in (pyramid_scales, torch.jit.script(pyramid_scales)):
        scales, mapper = own(maps, image_shapes, 224, 4)
        want_scales, want_mapper = poolers._setup_scales(maps, image_shapes, 224, 4)
        assert scales == want_scales and (mapper.k_min, mapper.k_max) == (want_mapper.k_min, want_mapper.k_max)

    torch.manual_seed(0)
    image, masks = torch.rand(3, 97, 130), (torch.rand(2, 97, 130) > 0.5).to(torch.uint8)
    for own, fixed_size in ((resize_image_and_masks, None), (resize_image_and_masks, (61, 47)),
                            (torch.jit.script(resize_image_and_masks), (61, 47))):
        got = own(image, 128, 160, {"masks": masks.clone()}, fixed_size)
        want = torchvision_resize(image, 128, 160, {"masks": masks.clone()}, fixed_size)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1]["masks"], want[1]["masks"])
