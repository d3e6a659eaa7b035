"""One training step of mask_rcnn_r50_fpn_1x_coco, as its config builds the model, optimizer and schedule, is
torchvision's maskrcnn_resnet50_fpn step under torchvision's references/detection recipe (train.py's SGD on every
trainable parameter with weight decay 1e-4, engine.py's linear warm-up from 0.001), from the same weights and batch."""
import pytest
import torch
import torchvision
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from workbench.benchmarks.detector_inference import randomise_batchnorm
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.engine.solver import build_optimizer, build_scheduler
from workbench.tasks.detection import build_model, detection_step

SIZE = 160  # the tiny scale: min_size = max_size, so both models resize every image alike
# torchvision's references: train.py (momentum 0.9, weight decay 1e-4 on every parameter that requires grad) and
# engine.py (warm-up factor 1/1000 over min(1000, len(data_loader) - 1) iterations in epoch 0)
REFERENCE_SGD = dict(lr=0.02, momentum=0.9, weight_decay=1e-4)
REFERENCE_WARMUP = dict(start_factor=0.001, total_iters=1000)
RELATIVE = 1e-4


def _batch() -> tuple[list[torch.Tensor], list[dict]]:
    generator = torch.Generator().manual_seed(3)
    images = [torch.rand(3, 120, 150, generator=generator), torch.rand(3, 140, 110, generator=generator)]
    boxes = [torch.tensor([[20.0, 15.0, 90.0, 70.0], [60.0, 50.0, 140.0, 110.0]]),
             torch.tensor([[10.0, 30.0, 60.0, 120.0]])]
    targets = []
    for image, box, labels in zip(images, boxes, [torch.tensor([1, 17]), torch.tensor([80])]):
        masks = torch.zeros(len(box), *image.shape[1:], dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, box.int().tolist()):
            mask[y1 + 5:y2 - 5, x1:x2] = 1
        targets.append(dict(boxes=box, labels=labels, masks=masks))
    return images, targets


SGD_SETTINGS = ("lr", "momentum", "dampening", "nesterov", "weight_decay")


def _step(model, optimizer, scheduler, loss_of) -> tuple[dict, dict, dict]:
    """Losses and gradients of one step, and the SGD settings (lr, momentum, weight decay) each trainable parameter
    took in it and takes in the next."""
    torch.manual_seed(0)  # the same anchors and RoIs sampled
    losses = loss_of(model.train())
    optimizer.zero_grad()
    sum(losses.values()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    settings = {}
    for _ in range(2):
        group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        for name, p in model.named_parameters():
            if p.requires_grad:
                settings.setdefault(name, []).append(tuple(group_of[id(p)][key] for key in SGD_SETTINGS))
        optimizer.step()
        scheduler.step()
    return {k: v.detach() for k, v in losses.items()}, grads, settings


def _assert_relative(actual: dict, expected: dict, what: str) -> None:
    assert actual.keys() == expected.keys(), what
    for name, want in expected.items():
        error = (actual[name] - want).norm() / want.norm().clamp_min(1e-12)
        assert error < RELATIVE, f"{what} of {name}: relative difference {error:.2e}"


@pytest.mark.filterwarnings("ignore:.*(pretrained|weights).*:UserWarning")
def test_one_step_of_the_config_is_torchvisions_reference_step(tmp_path):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50()
    randomise_batchnorm(resnet)
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    # torchvision's maskrcnn_resnet50_fpn with ImageNet backbone weights: FrozenBatchNorm2d, layer2-4 trainable
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=3)
    backbone.body.load_state_dict(resnet.state_dict(), strict=False)
    reference = MaskRCNN(backbone, num_classes=81, min_size=SIZE, max_size=SIZE)

    config = load_config(DETECTION_DEFAULTS, "configs/mask_rcnn_r50_fpn_1x_coco.yaml", [
        f"model.backbone_weights={tmp_path / 'resnet50.pth'}", f"model.options.min_size={SIZE}",
        f"model.options.max_size={SIZE}",
        # the plain path: folding the frozen BatchNorm into the convolutions moves gradients by float rounding
        # (up to 2e-4 relative in layer2 here)
        "model.options.fast_inference=false"])
    model = build_model(config, torch.device("cpu"))
    assert model.state_dict().keys() == reference.state_dict().keys()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, p in reference.named_parameters() if p.requires_grad}
    for name, tensor in model.state_dict().items():
        if name.startswith("backbone.body."):  # the same ImageNet weights, frozen BN included
            torch.testing.assert_close(tensor, reference.state_dict()[name], rtol=0, atol=0)
    model.load_state_dict(reference.state_dict())  # and the same randomly drawn FPN and heads

    images, targets = _batch()
    step = detection_step(torch.device("cpu"))
    optimizer = build_optimizer(model, config["solver"])
    ours = _step(model, optimizer, build_scheduler(optimizer, config["solver"]),
                 lambda m: step(m, ([i.clone() for i in images], [dict(t) for t in targets])))
    reference_optimizer = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], **REFERENCE_SGD)
    theirs = _step(reference, reference_optimizer,
                   torch.optim.lr_scheduler.LinearLR(reference_optimizer, **REFERENCE_WARMUP),
                   lambda m: m([i.clone() for i in images], [dict(t) for t in targets]))

    assert all(loss > 0 for loss in theirs[0].values())
    for actual, expected, what in zip(ours, theirs, ("loss", "gradient")):
        _assert_relative(actual, expected, what)
    for name, steps in theirs[2].items():
        for actual, expected in zip(ours[2][name], steps, strict=True):
            assert actual == pytest.approx(expected, rel=1e-12), name
