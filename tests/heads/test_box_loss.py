"""Box losses of another smooth-L1 beta: at 1/9 they are torchvision's to the bit, at 0 they are L1, and the detector
still compiles with TorchScript."""
import pytest
import torch

import heads
from heads.box_loss import SmoothL1RoIHeads, SmoothL1RPN, set_box_loss_betas

BOX_TERMS = {"rpn": "loss_rpn_box_reg", "roi_heads": "loss_box_reg"}


def _losses(model, targets, with_masks):
    torch.manual_seed(1)  # the same anchors and RoIs sampled
    return model.train()([torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(2)) for _ in range(2)],
                         targets(with_masks))


@pytest.mark.parametrize("kind,neck", [("mask_rcnn", "fpn"), ("faster_rcnn", "c4")])
def test_our_losses_at_torchvisions_beta_are_torchvisions(kind, neck, fast_options, targets):
    torch.manual_seed(0)
    model = heads.build_detector(kind, backbone="resnet18", num_classes=3, **fast_options(kind, neck))
    expected = _losses(model, targets, kind == "mask_rcnn")
    model.rpn.__class__, model.roi_heads.__class__ = SmoothL1RPN, SmoothL1RoIHeads  # beta stays 1/9
    actual = _losses(model, targets, kind == "mask_rcnn")
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)


@pytest.mark.parametrize("module,other", [("rpn", "roi_heads"), ("roi_heads", "rpn")])
def test_beta_zero_is_the_l1_loss_of_that_module_only(module, other, fast_options, targets):
    torch.manual_seed(0)
    model = heads.mask_rcnn("resnet18", num_classes=3, **fast_options("mask_rcnn", "fpn"))
    smooth = _losses(model, targets, True)
    set_box_loss_betas(model, **{"rpn_beta" if module == "rpn" else "box_beta": 0.0})
    assert type(getattr(model, other)).__module__.startswith("torchvision")
    l1 = _losses(model, targets, True)
    # the deltas of small boxes are mostly under 1/9, where smooth L1 (x^2 / 2 beta) is below |x| - beta / 2 < |x|
    assert l1[BOX_TERMS[module]] > smooth[BOX_TERMS[module]]
    for name in smooth.keys() - {BOX_TERMS[module]}:
        torch.testing.assert_close(l1[name], smooth[name], rtol=0, atol=0)


def test_l1_detector_scripts_and_gives_its_eager_losses_and_detections(fast_options, targets):
    torch.manual_seed(0)
    model = heads.mask_rcnn("resnet18", num_classes=3, rpn_smooth_l1_beta=0.0, box_smooth_l1_beta=0.0,
                            box_score_thresh=0.0, fast_inference=False, **fast_options("mask_rcnn", "fpn"))
    assert isinstance(model.rpn, SmoothL1RPN) and model.roi_heads.smooth_l1_beta == 0.0
    with pytest.warns(FutureWarning):
        scripted = torch.jit.script(model)
    eager = _losses(model, targets, True)
    scripted_losses, _ = _losses(scripted, targets, True)
    for name in eager:
        torch.testing.assert_close(scripted_losses[name], eager[name])
    images = [torch.rand(3, 128, 128)]
    with torch.no_grad():
        expected = model.eval()(images)[0]
        _, (actual,) = scripted.eval()(images)
    assert len(expected["scores"]) > 0
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key])


def test_negative_beta_is_refused(fast_options):
    with pytest.raises(ValueError, match="rpn smooth L1 beta=-1"):
        heads.faster_rcnn("resnet18", num_classes=3, rpn_smooth_l1_beta=-1, **fast_options("faster_rcnn", "fpn"))
