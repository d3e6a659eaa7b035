"""A detector on a torch without the oneDNN operators and a torchvision without the private helpers it uses
(`_setup_scales`, `_resize_image_and_masks`): the fast path gives the detections of the fast and of the plain path
within the fast path's tolerances, the plain path torchvision's to the bit."""
import copy
import logging
from unittest import mock

import torch

import heads
from backbones.packed_conv import PackedConv2d
from heads import roi_align, transform
from heads.pyramid_scales import pyramid_scales
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
