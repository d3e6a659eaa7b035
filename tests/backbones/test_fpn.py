"""The FPN wrapper plugs into torchvision's detectors unchanged."""
import pytest
import torch
from torchvision.models.detection import FasterRCNN, MaskRCNN

import backbones


def targets(with_masks: bool) -> list[dict]:
    masks = torch.zeros(1, 128, 128, dtype=torch.uint8)
    masks[0, 20:60, 30:90] = 1
    target = dict(boxes=torch.tensor([[30.0, 20.0, 90.0, 60.0]]), labels=torch.tensor([1]))
    return [dict(target, masks=masks) if with_masks else target]


@pytest.mark.parametrize("name", ["resnet18", "resnetv2_18"])
def test_fpn_outputs_pyramid_levels(name):
    fpn = backbones.create_fpn_backbone(name, out_channels=64).eval()
    with torch.no_grad():
        maps = fpn(torch.randn(1, 3, 128, 128))
    assert list(maps) == ["0", "1", "2", "3", "pool"]
    assert [m.shape[-1] for m in maps.values()] == [32, 16, 8, 4, 2]
    assert all(m.shape[1] == 64 == fpn.out_channels for m in maps.values())


@pytest.mark.parametrize("name", ["resnet18", "resnetv2_18"])
def test_torchvision_faster_rcnn_trains_a_step_on_it(name):
    torch.manual_seed(0)
    backbone = backbones.create_fpn_backbone(name, out_channels=64, frozen_stages=1)
    model = FasterRCNN(backbone, num_classes=3, min_size=128, max_size=128, rpn_pre_nms_top_n_train=200,
                       rpn_post_nms_top_n_train=100, box_batch_size_per_image=32)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    losses = model([torch.rand(3, 128, 128)], targets(with_masks=False))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    optimizer.step()
    assert backbone.body.layer2[0].conv1.weight.grad is not None and backbone.body.layer1[0].conv1.weight.grad is None


def test_torchvision_mask_rcnn_runs_on_it():
    model = MaskRCNN(backbones.create_fpn_backbone("resnet18", out_channels=64), num_classes=3, min_size=128,
                     max_size=128, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                     box_batch_size_per_image=32)
    losses = model.train()([torch.rand(3, 128, 128)], targets(with_masks=True))
    assert "loss_mask" in losses and torch.isfinite(sum(losses.values()))
    with torch.no_grad():
        detections = model.eval()([torch.rand(3, 128, 128)])
    assert set(detections[0]) == {"boxes", "labels", "scores", "masks"}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", ["resnet18", "resnetv2_18"])
def test_torchscript_gives_the_eager_maps_in_eval_and_training(name):
    torch.manual_seed(0)
    fpn = backbones.create_fpn_backbone(name, out_channels=32, frozen_stages=1)
    scripted = torch.jit.script(fpn)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        default = fpn.eval()(x)  # frozen BatchNorm folded where the body folds it: equal to float rounding
        if hasattr(fpn.body, "set_fused"):
            fpn.body.set_fused(False)
        exact, got = fpn(x), scripted.eval()(x)
    assert list(got) == list(exact) == ["0", "1", "2", "3", "pool"]
    for level in exact:
        assert torch.equal(got[level], exact[level])
        assert (got[level] - default[level]).abs().max() <= 1e-5 * default[level].abs().max()
    grads = []
    for model in (fpn.train(), scripted.train()):  # the scripted module shares the eager one's parameters
        fpn.zero_grad(set_to_none=True)
        model(x)["0"].sum().backward()
        grads.append({n: p.grad for n, p in fpn.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for pname, grad in grads[0].items():
        assert torch.equal(grads[1][pname], grad), pname
