"""Faster and Mask R-CNN, FPN and C4, compile with torch.jit.script as torchvision's detectors do, and the scripted
detector computes what the eager one does: to the bit against the exact path (`set_fast_inference(model, False)`),
to float rounding against the default fast path, and the same training losses."""
import pytest
import torch

import heads

# every kind and neck on resnet18; a pre-activation net's C4 heads carry its final norm (heads.necks.c4.Res5Head)
CASES = [(kind, neck, "resnet18") for kind in ("faster_rcnn", "mask_rcnn") for neck in ("fpn", "c4")]
CASES += [("mask_rcnn", "c4", "resnetv2_18")]

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),
              pytest.mark.filterwarnings("ignore:RCNN always returns a .Losses, Detections. tuple:UserWarning")]


@pytest.mark.parametrize("kind,neck,backbone", CASES)
def test_scripted_detector_gives_the_eager_detections_and_losses(kind, neck, backbone, fast_options, targets):
    torch.manual_seed(0)
    model = heads.build_detector(kind, backbone=backbone, num_classes=3, box_score_thresh=0.0,
                                 **fast_options(kind, neck)).eval()
    scripted = torch.jit.script(model)  # with the default fast paths in place: TorchScript compiles the plain ones
    images = [torch.rand(3, 100, 150), torch.rand(3, 128, 96)]
    with torch.no_grad():
        _, got = scripted(images)  # scripted detectors return (losses, detections), as torchvision's
        fast = model(images)
        maps, fast_maps = scripted.backbone(images[0][None]), model.backbone(images[0][None])
        heads.set_fast_inference(model, False)
        exact = model(images)
    for level, fast_map in fast_maps.items():  # the backbone's BatchNorm folding changes maps by float rounding
        assert (maps[level] - fast_map).abs().max() <= 1e-5 * fast_map.abs().max()
    for got_image, exact_image, fast_image in zip(got, exact, fast):
        assert got_image.keys() == exact_image.keys() and len(got_image["scores"]) > 0
        for key, value in got_image.items():
            assert torch.equal(value, exact_image[key]), key
            torch.testing.assert_close(value, fast_image[key], rtol=1e-4, atol=1e-4, msg=key)

    with_masks = kind == "mask_rcnn"
    images = [torch.rand(3, 128, 128), torch.rand(3, 128, 128)]
    torch.manual_seed(1)
    eager_losses = model.train()(images, targets(with_masks))
    torch.manual_seed(1)
    losses, _ = scripted.train()(images, targets(with_masks))
    assert losses.keys() == eager_losses.keys()
    for name, loss in losses.items():  # training RoIAlign sums in another order in eager mode (heads.ops.roi_align)
        torch.testing.assert_close(loss, eager_losses[name], rtol=1e-5, atol=1e-6, msg=name)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
