"""Faster and Mask R-CNN, FPN and C4: a training step gives finite losses reaching every trainable parameter, and
evaluation gives detections of the right shapes in the input's size."""
import pytest
import torch
from torchvision.models.detection import FasterRCNN, MaskRCNN

import backbones
import heads

BOX_LOSSES = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
CASES = [(kind, neck) for kind in ("faster_rcnn", "mask_rcnn") for neck in ("fpn", "c4")]
# pre-activation nets end their stages without a norm and keep a final one: a cheaper subset of the cases
PREACT_CASES = [("faster_rcnn", "fpn"), ("mask_rcnn", "c4")]
# grouped bottlenecks: one FPN case here (a C4 step on ResNeXt-50 takes 10 s on a CPU; see the res5 test below)
RESNEXT_CASES = [("resnext50_32x4d", "mask_rcnn", "fpn")]


@pytest.mark.parametrize("backbone,kind,neck", [("resnet18", *case) for case in CASES]
                         + [("resnetv2_18", *case) for case in PREACT_CASES] + RESNEXT_CASES)
def test_trains_a_step_then_detects(backbone, kind, neck, fast_options, targets):
    torch.manual_seed(0)
    model = heads.build_detector(kind, backbone=backbone, num_classes=3, box_score_thresh=0.0,
                                 **fast_options(kind, neck))
    assert isinstance(model, MaskRCNN if kind == "mask_rcnn" else FasterRCNN)
    assert model.num_classes == 3 and model.pretrained_cfg["architecture"] == backbone
    with_masks = kind == "mask_rcnn"
    losses = model.train()([torch.rand(3, 128, 128), torch.rand(3, 128, 128)], targets(with_masks))
    assert set(losses) == BOX_LOSSES | ({"loss_mask"} if with_masks else set())
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    no_grad = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad

    with torch.no_grad():
        detections = model.eval()([torch.rand(3, 100, 150), torch.rand(3, 128, 96)])
    for output, (height, width) in zip(detections, [(100, 150), (128, 96)]):
        assert set(output) == {"boxes", "labels", "scores"} | ({"masks"} if with_masks else set())
        count = len(output["scores"])
        assert 0 < count <= 20
        assert output["boxes"].shape == (count, 4) and output["labels"].shape == (count,)
        # clipped to the resized image, boxes come back to the input's size within float rounding of its border
        assert output["boxes"][:, 2].max() <= width + 1e-3 and output["boxes"][:, 3].max() <= height + 1e-3
        assert set(output["labels"].tolist()) <= {1, 2}
        if with_masks:
            assert output["masks"].shape == (count, 1, height, width)


def test_c4_heads_run_res5_on_14x14_rois(fast_options):
    model = heads.mask_rcnn("resnet18", num_classes=3, **fast_options("mask_rcnn", "c4"))
    roi_heads = model.roi_heads
    assert model.backbone.out_channels == 256 and roi_heads.box_roi_pool.output_size == (14, 14)
    assert roi_heads.mask_head is roi_heads.box_head.res5
    assert roi_heads.box_predictor.cls_score.in_features == 512
    rois = torch.randn(2, 256, 14, 14)
    assert roi_heads.box_head(rois).shape == (2, 512)
    assert roi_heads.mask_predictor(roi_heads.mask_head(rois)).shape == (2, 3, 14, 14)
    assert model.rpn.head.cls_logits.out_channels == 15


def test_c4_heads_run_grouped_res5_of_resnext(fast_options):
    model = heads.faster_rcnn("resnext50_32x4d", num_classes=3, **fast_options("faster_rcnn", "c4")).eval()
    res5 = model.roi_heads.box_head.res5
    assert model.backbone.out_channels == 1024 and res5[0].conv2.groups == 32 and res5[0].conv2.stride == (2, 2)
    assert model.roi_heads.box_predictor.cls_score.in_features == 2048
    assert model.rpn.head.conv[0][0].in_channels == 1024
    with torch.no_grad():
        assert model.roi_heads.box_head(torch.randn(2, 1024, 14, 14)).shape == (2, 2048)


def test_c4_heads_of_preactivation_nets_end_with_the_final_norm(fast_options):
    model = heads.mask_rcnn("resnetv2_18", num_classes=3, **fast_options("mask_rcnn", "c4")).eval()
    box_head, mask_head = model.roi_heads.box_head, model.roi_heads.mask_head
    assert mask_head.res5 is box_head.res5 and mask_head.norm is box_head.norm is not None
    rois = torch.randn(2, 256, 14, 14)
    with torch.no_grad():
        maps = torch.relu(box_head.norm(box_head.res5(rois)))
        assert torch.equal(mask_head(rois), maps) and torch.equal(box_head(rois), maps.mean(dim=(2, 3)))


@pytest.mark.parametrize("box_head, convs", [("2conv1fc", 2), ("4conv1fc", 4)])
def test_fpn_heads_options(fast_options, box_head, convs):
    options = dict(fast_options("mask_rcnn", "fpn"), box_head=box_head, anchor_sizes=(16, 32, 64, 128, 256))
    model = heads.mask_rcnn("resnet18", num_classes=3, **options)
    assert len(model.roi_heads.box_head) == convs + 3
    assert isinstance(model.roi_heads.box_head[0][1], torch.nn.GroupNorm)
    assert len(model.roi_heads.mask_head) == 2
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert model.backbone.out_channels == 64


def test_fpn_backbone_is_the_one_create_fpn_backbone_builds():
    options = dict(norm="frozen_bn", frozen_stages=1)
    torch.manual_seed(0)
    detector = heads.faster_rcnn("resnet18", num_classes=3, fpn_channels=64, **options)
    torch.manual_seed(0)
    expected = backbones.create_fpn_backbone("resnet18", out_channels=64, **options)
    got, want = detector.backbone.state_dict(), expected.state_dict()
    assert list(got) == list(want)
    torch.testing.assert_close(got, want)
    assert [p.requires_grad for p in detector.backbone.parameters()] == [p.requires_grad for p in expected.parameters()]
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(detector.backbone.eval()(image), expected.eval()(image))


@pytest.mark.parametrize("kwargs,named", [
    (dict(neck="c5"), "'c5'.*fpn, c4"),
    (dict(box_head="3fc"), "'3fc'.*2fc, 2conv1fc, 4conv1fc"),
    (dict(roi_size=7), "roi_size.*valid options: norm, frozen_stages"),
    (dict(neck="c4", fpn_channels=64), "fpn_channels"),
    (dict(mask_head_convs=2), "mask_head_convs"),
    (dict(num_classes=1), "num_classes=1"),
    (dict(anchor_sizes=(32, 64)), "anchor_sizes"),
    (dict(backbone="resnet20_cifar"), "resnet20_cifar"),
])
def test_bad_options_raise_naming_them(kwargs, named):
    kwargs = {"backbone": "resnet18", "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=named):
        heads.faster_rcnn(**kwargs)


def test_build_detector_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'retinanet'.*faster_rcnn, mask_rcnn"):
        heads.build_detector("retinanet", num_classes=3)
