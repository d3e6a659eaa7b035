"""RoIAlign with the half-pixel offset (detectron2's ROIAlignV2) and adaptive sampling, as detector options: the
poolers compute `torchvision.ops.roi_align(..., aligned=True)` per level, eager, with gradients and scripted."""
import pytest
import torch
import torchvision

import heads
from heads.ops.roi_align import MultiScaleRoIAlign

NAMES = ["0", "1", "2", "3"]
IMAGE_SHAPES = [(128, 160), (120, 160)]


def pyramid_and_boxes():
    generator = torch.Generator().manual_seed(0)
    features = {name: torch.randn(2, 8, 128 >> level, 160 >> level, generator=generator)
                for level, name in enumerate(NAMES, start=2)}
    sides = torch.exp(torch.empty(2, 24, 2).uniform_(2.0, 5.0, generator=generator))  # 7 to 150 pixels
    corners = torch.rand(2, 24, 2, generator=generator) * 150 - 10
    return features, [torch.cat([c, c + s], dim=1) for c, s in zip(corners, sides)]


def expected_pooling(features, boxes, output_size, sampling_ratio):
    """Every RoI pooled by torchvision.ops.roi_align(aligned=True) from the level torchvision's pooler maps it to."""
    reference = torchvision.ops.MultiScaleRoIAlign(NAMES, output_size, sampling_ratio, canonical_scale=56)
    reference(features, boxes, IMAGE_SHAPES)  # sets its scales and level mapper
    levels = reference.map_levels(boxes)
    rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
    result = torch.zeros(len(rois), 8, output_size, output_size)
    for level, (name, scale) in enumerate(zip(NAMES, reference.scales)):
        index = torch.where(levels == level)[0]
        result[index] = torchvision.ops.roi_align(features[name], rois[index], output_size, scale, sampling_ratio,
                                                  aligned=True)
    assert len(set(levels.tolist())) == 4
    return result


@pytest.mark.parametrize("sampling_ratio", [2, 0])
@pytest.mark.parametrize("requires_grad", [False, True], ids=["inference", "training"])
def test_aligned_pooler_is_torchvision_roi_align_aligned(sampling_ratio, requires_grad):
    features, boxes = pyramid_and_boxes()
    expected = expected_pooling(features, boxes, 7, sampling_ratio)
    maps = {name: level.clone().requires_grad_(requires_grad) for name, level in features.items()}
    pooler = MultiScaleRoIAlign(NAMES, 7, sampling_ratio, canonical_scale=56, aligned=True)
    with torch.set_grad_enabled(requires_grad):
        pooled = pooler(maps, boxes, IMAGE_SHAPES)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)
    unaligned = MultiScaleRoIAlign(NAMES, 7, sampling_ratio, canonical_scale=56)(features, boxes, IMAGE_SHAPES)
    assert not torch.allclose(unaligned, expected, atol=1e-3)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_scripted_aligned_pooler_is_the_eager_one():
    features, boxes = pyramid_and_boxes()
    for names in (NAMES, ["0"]):
        pooler = MultiScaleRoIAlign(names, 7, 2, canonical_scale=56, aligned=True)
        eager = pooler(features, boxes, IMAGE_SHAPES)
        scripted = torch.jit.script(MultiScaleRoIAlign(names, 7, 2, canonical_scale=56, aligned=True))
        torch.testing.assert_close(scripted(features, boxes, IMAGE_SHAPES), eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("neck", ["fpn", "c4"])
def test_detector_options_reach_both_poolers(neck, fast_options):
    model = heads.mask_rcnn("resnet18", num_classes=3, roi_align_aligned=True, roi_sampling_ratio=0,
                            **fast_options("mask_rcnn", neck))
    for pooler in (model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool):
        assert pooler.aligned and pooler.sampling_ratio == 0
    default = heads.faster_rcnn("resnet18", num_classes=3, **fast_options("faster_rcnn", neck))
    assert not default.roi_heads.box_roi_pool.aligned and default.roi_heads.box_roi_pool.sampling_ratio == 2
    with torch.no_grad():
        assert model.eval()([torch.rand(3, 128, 128)])[0].keys() == {"boxes", "labels", "scores", "masks"}
