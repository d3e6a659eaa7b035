"""The heads start as detectron2 draws them when asked, and as torchvision builds them by default."""
import pytest
import torch

import heads


@pytest.mark.parametrize("neck", ["fpn", "c4"])
def test_detectron2_init_draws_the_predictors_from_small_normals(neck, fast_options):
    torch.manual_seed(0)
    model = heads.mask_rcnn("resnet18", num_classes=81, head_init="detectron2", **fast_options("mask_rcnn", neck))
    roi_heads = model.roi_heads
    for layer, std in [(roi_heads.box_predictor.cls_score, 0.01), (roi_heads.box_predictor.bbox_pred, 0.001),
                       (roi_heads.mask_predictor.mask_fcn_logits, 0.001)]:
        assert layer.weight.std().item() == pytest.approx(std, rel=0.1)
        assert not layer.bias.any()
    for layer in roi_heads.box_head.modules():
        if isinstance(layer, torch.nn.Linear):  # Kaiming uniform of a=1: bound sqrt(3 / fan_in)
            assert layer.weight.abs().max() <= (3 / layer.in_features) ** 0.5 and not layer.bias.any()
            assert layer.weight.std().item() == pytest.approx((1 / layer.in_features) ** 0.5, rel=0.1)


def test_torchvision_init_is_the_default(fast_options):
    torch.manual_seed(0)
    default = heads.mask_rcnn("resnet18", num_classes=81, **fast_options("mask_rcnn", "fpn"))
    torch.manual_seed(0)
    named = heads.mask_rcnn("resnet18", num_classes=81, head_init="torchvision", **fast_options("mask_rcnn", "fpn"))
    for (name, want), got in zip(default.state_dict().items(), named.state_dict().values()):
        assert torch.equal(got, want), name
    assert default.roi_heads.box_predictor.cls_score.bias.any()  # PyTorch's Linear default, not detectron2's zeros


def test_unknown_init_is_named(fast_options):
    with pytest.raises(ValueError, match="head_init='caffe2' is not supported; choose one of torchvision, detectron2"):
        heads.faster_rcnn("resnet18", num_classes=3, head_init="caffe2", **fast_options("faster_rcnn", "fpn"))
