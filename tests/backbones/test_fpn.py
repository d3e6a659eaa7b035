"""The FPN wrapper plugs into torchvision's detectors unchanged."""
import torch
from torchvision.models.detection import FasterRCNN, MaskRCNN

import backbones


def targets(with_masks: bool) -> list[dict]:
    masks = torch.zeros(1, 128, 128, dtype=torch.uint8)
    masks[0, 20:60, 30:90] = 1
    target = dict(boxes=torch.tensor([[30.0, 20.0, 90.0, 60.0]]), labels=torch.tensor([1]))
    return [dict(target, masks=masks) if with_masks else target]


def test_fpn_outputs_pyramid_levels():
    fpn = backbones.create_fpn_backbone("resnet18", out_channels=64).eval()
    with torch.no_grad():
        maps = fpn(torch.randn(1, 3, 128, 128))
    assert list(maps) == ["0", "1", "2", "3", "pool"]
    assert [m.shape[-1] for m in maps.values()] == [32, 16, 8, 4, 2]
    assert all(m.shape[1] == 64 == fpn.out_channels for m in maps.values())


def test_torchvision_faster_rcnn_trains_a_step_on_it():
    torch.manual_seed(0)
    backbone = backbones.create_fpn_backbone("resnet18", out_channels=64, frozen_stages=1)
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
