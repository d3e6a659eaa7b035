"""Pretrained configurations (`name.tag`), as timm's `pretrained_cfg`: where the weights are and how inputs must look.

`mean` and `std` are in the units of `pixel_range` (1.0: pixels in 0-1; 255.0: pixels in 0-255) and the channel
order `channel_order`. A detector built on a backbone takes its input normalisation from here.
"""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
MSRA_BGR_MEAN = (103.530, 116.280, 123.675)
TORCHVISION_URL = "https://download.pytorch.org/models/"
DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/"


def imagenet_cfg(**overrides) -> dict:
    """The fields every ImageNet config has, with `overrides` applied."""
    cfg = dict(
        url="", hf_hub_id="", file_format="", num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB",
        pixel_range=1.0, first_conv="conv1", classifier="fc", style="pytorch", top1=None, source="",
    )
    cfg.update(overrides)
    return cfg


def cifar_cfg(**overrides) -> dict:
    """The default config of the CIFAR nets (no published weights)."""
    return imagenet_cfg(num_classes=10, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, mean=CIFAR_MEAN,
                        std=CIFAR_STD, **overrides)


def torchvision_cfg(file: str, top1: float, **overrides) -> dict:
    """A torchvision release (V1: 224 px training; V2: 176 px training, 232 px resize at test)."""
    return imagenet_cfg(url=TORCHVISION_URL + file, file_format="torchvision", top1=top1, source="torchvision",
                        **overrides)


def msra_cfg(file: str, top1: float) -> dict:
    """The paper's Caffe weights as detectron2 ships them: caffe style, BGR, 0-255, mean subtraction only."""
    return imagenet_cfg(url=DETECTRON2_URL + file, file_format="caffe2", top1=top1, style="caffe", channel_order="BGR",
                        pixel_range=255.0, mean=MSRA_BGR_MEAN, std=(1.0, 1.0, 1.0), source="MSRA via detectron2")


TV2 = dict(input_size=(3, 176, 176), pool_size=(6, 6), crop_pct=0.965)

# Per architecture, its tags; the first tag is the default for `pretrained=True`. Top-1 as published (ImageNet val).
PRETRAINED_CFGS: dict[str, dict[str, dict]] = {
    "resnet18": {
        "tv_in1k": torchvision_cfg("resnet18-f37072fd.pth", 69.758),
    },
    "resnet34": {
        "tv_in1k": torchvision_cfg("resnet34-b627a593.pth", 73.314),
    },
    "resnet50": {
        "tv_in1k": torchvision_cfg("resnet50-0676ba61.pth", 76.130),
        "tv2_in1k": torchvision_cfg("resnet50-11ad3fa6.pth", 80.858, **TV2),
        "a1_in1k": imagenet_cfg(
            hf_hub_id="timm/resnet50.a1_in1k", file_format="timm", top1=81.22, crop_pct=0.95,
            interpolation="bicubic", source="timm (ResNet strikes back A1; top-1 at 288 px)",
        ),
        "msra_in1k": msra_cfg("R-50.pkl", 75.3),
    },
    "resnet101": {
        "tv_in1k": torchvision_cfg("resnet101-63fe2227.pth", 77.374),
        "tv2_in1k": torchvision_cfg("resnet101-cd907fc2.pth", 81.886, **TV2),
        "msra_in1k": msra_cfg("R-101.pkl", 76.4),
    },
    "resnet152": {
        "tv_in1k": torchvision_cfg("resnet152-394f9c45.pth", 78.312),
        "tv2_in1k": torchvision_cfg("resnet152-f82ba261.pth", 82.284, **TV2),
    },
}
