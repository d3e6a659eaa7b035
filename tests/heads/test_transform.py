"""Input normalisation follows the backbone's weights: RGB 0-1 images are turned into what the weights expect."""
import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

import heads
from backbones.pretrained import IMAGENET_MEAN, IMAGENET_STD, MSRA_BGR_MEAN, MSRA_BGR_STD

DETECTRON2_PIXEL_MEAN = (103.530, 116.280, 123.675)  # detectron2's MSRA normalisation, on BGR 0-255 pixels
MSRA = dict(mean=MSRA_BGR_MEAN, std=MSRA_BGR_STD, channel_order="BGR", pixel_range=255.0)
# as our checkpoints stated it before mean and std were in 0-1 units
MSRA_LEGACY = dict(mean=DETECTRON2_PIXEL_MEAN, std=(1.0, 1.0, 1.0), channel_order="BGR", pixel_range=255.0)


@pytest.mark.parametrize("cfg", [MSRA, MSRA_LEGACY], ids=["0-1 units", "legacy 0-255 units"])
def test_bgr_0_255_normalisation_is_detectron2s(cfg):
    image = torch.rand(3, 32, 48)
    by_hand = image.flip(0) * 255 - torch.tensor(DETECTRON2_PIXEL_MEAN)[:, None, None]
    normalised = heads.RCNNTransform(128, 128, cfg).normalize(image)
    torch.testing.assert_close(normalised, by_hand, rtol=1e-5, atol=1e-4)


def test_rgb_normalisation_is_torchvisions():
    image = torch.rand(3, 32, 48)
    cfg = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB", pixel_range=1.0)
    expected = GeneralizedRCNNTransform(128, 128, IMAGENET_MEAN, IMAGENET_STD).normalize(image)
    assert torch.equal(heads.RCNNTransform(128, 128, cfg).normalize(image), expected)


def test_detector_takes_normalisation_from_the_backbone_tag():
    model = heads.faster_rcnn("resnet50.msra_in1k", num_classes=3)
    assert model.transform.channel_order == "BGR"
    torch.testing.assert_close(model.transform.image_mean, [m / 255 for m in DETECTRON2_PIXEL_MEAN])
    assert model.pretrained_cfg["style"] == "caffe"
    default = heads.faster_rcnn("resnet18", num_classes=3)
    assert default.transform.channel_order == "RGB" and default.transform.image_std == list(IMAGENET_STD)


def test_skip_resize_in_training_keeps_training_images_but_resizes_at_eval():
    transform = heads.faster_rcnn("resnet18", num_classes=3, min_size=128, max_size=256,
                                  skip_resize_in_training=True).transform
    image, target = torch.rand(3, 100, 150), dict(boxes=torch.tensor([[10.0, 10.0, 50.0, 50.0]]))
    images, targets = transform.train()([image], [target])
    assert images.image_sizes == [(100, 150)] and torch.equal(targets[0]["boxes"], target["boxes"])
    images, _ = transform.eval()([image])
    assert images.image_sizes == [(128, 192)]


def sample_target(height: int, width: int) -> dict:
    masks = torch.zeros(1, height, width, dtype=torch.uint8)
    masks[0, : height // 2, : width // 2] = 1
    return dict(boxes=torch.tensor([[1.0, 1.0, width / 2, height / 2]]), masks=masks,
                keypoints=torch.tensor([[[2.0, 3.0, 1.0]]]))


def transformed(transform, image: torch.Tensor, training: bool, seed: int = 0) -> tuple:
    torch.manual_seed(seed)  # training picks min_size at random
    images, targets = transform.train(training)([image], [sample_target(*image.shape[-2:])])
    return images.tensors, images.image_sizes, targets[0]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("training", [False, True])
def test_resize_is_torchvisions_and_scripts(training):
    cfg = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB", pixel_range=1.0)
    ours = heads.RCNNTransform((96, 112, 128), 160, cfg)
    reference = GeneralizedRCNNTransform((96, 112, 128), 160, IMAGENET_MEAN, IMAGENET_STD)
    scripted = torch.jit.script(ours)
    for seed in range(3):
        image = torch.rand(3, 100, 150)
        expected = transformed(reference, image, training, seed)
        for transform in (ours, scripted):
            got = transformed(transform, image, training, seed)
            assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
            assert got[2].keys() == expected[2].keys()
            assert all(torch.equal(got[2][k], expected[2][k]) for k in expected[2])
    elongated = torch.rand(3, 4, 2000)  # torchvision would shrink its height below one pixel
    eager, compiled = transformed(ours, elongated, training), transformed(scripted, elongated, training)
    assert eager[1] == compiled[1] == [(1, 160)] and torch.equal(eager[0], compiled[0])
    assert all(torch.equal(eager[2][k], compiled[2][k]) for k in eager[2])
