"""Input normalisation follows the backbone's weights: RGB 0-1 images are turned into what the weights expect."""
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

import heads
from backbones.pretrained import IMAGENET_MEAN, IMAGENET_STD, MSRA_BGR_MEAN

MSRA = dict(mean=MSRA_BGR_MEAN, std=(1.0, 1.0, 1.0), channel_order="BGR", pixel_range=255.0)


def test_bgr_0_255_normalisation_matches_doing_it_by_hand():
    image = torch.rand(3, 32, 48)
    by_hand = (image.flip(0) * 255 - torch.tensor(MSRA_BGR_MEAN)[:, None, None]) / 1.0
    normalised = heads.RCNNTransform(128, 128, MSRA).normalize(image)
    torch.testing.assert_close(normalised, by_hand, rtol=1e-5, atol=1e-4)


def test_rgb_normalisation_is_torchvisions():
    image = torch.rand(3, 32, 48)
    cfg = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB", pixel_range=1.0)
    expected = GeneralizedRCNNTransform(128, 128, IMAGENET_MEAN, IMAGENET_STD).normalize(image)
    assert torch.equal(heads.RCNNTransform(128, 128, cfg).normalize(image), expected)


def test_detector_takes_normalisation_from_the_backbone_tag():
    model = heads.faster_rcnn("resnet50.msra_in1k", num_classes=3)
    assert model.transform.channel_order == "BGR"
    torch.testing.assert_close(model.transform.image_mean, [m / 255 for m in MSRA_BGR_MEAN])
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
