"""Pretrained configurations (`name.tag`), as timm's `pretrained_cfg`: where the weights are and how inputs must look.

`mean` and `std` are in 0-1 units for every tag, as timm's (`timm.data.resolve_data_config` reads them), and in the
channel order `channel_order`; our extra fields say what timm's transforms do not do: `channel_order` "BGR" (flip
RGB images first) and `pixel_range` 255.0 (the weights were trained on 0-255 pixels: a std of 1/255 in 0-1 units is
their mean subtraction only). A detector built on a backbone takes its input normalisation from here. `test_input_size`, where
present (timm's field), is the size of evaluation when it is not the training `input_size`; with `crop_pct` it gives
the resize of evaluation.
"""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
# detectron2's PIXEL_MEAN of MSRA's Caffe weights, (103.530, 116.280, 123.675) on BGR 0-255 pixels, in 0-1 units
MSRA_BGR_MEAN = IMAGENET_MEAN[::-1]
# their PIXEL_STD of 1 on 0-255 pixels: mean subtraction only
MSRA_BGR_STD = (1 / 255,) * 3
TORCHVISION_URL = "https://download.pytorch.org/models/"
DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/"
DETECTRON2_FAIR_URL = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/FAIR/"
# detectron2's PIXEL_STD of FAIR's Caffe2-trained ResNeXt, (57.375, 57.120, 58.395) on 0-255: ImageNet's, in BGR
FAIR_BGR_STD = IMAGENET_STD[::-1]
AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
# timm's IMAGENET_INCEPTION_MEAN / _STD: pixels scaled to -1..1
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)


def imagenet_cfg(**overrides) -> dict:
    """The fields every ImageNet config has, with `overrides` applied."""
    cfg = dict(
        url="", hf_hub_id="", file_format="", num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB",
        pixel_range=1.0, first_conv="conv1", classifier="fc", style="pytorch", shortcut_pad="append", top1=None,
        source="",
    )
    cfg.update(overrides)
    return cfg


def cifar_cfg(**overrides) -> dict:
    """The default config of the CIFAR nets (no weights), with `overrides` applied."""
    cifar = dict(num_classes=10, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, mean=CIFAR_MEAN, std=CIFAR_STD)
    return imagenet_cfg(**{**cifar, **overrides})


def torchvision_cfg(file: str, top1: float, **overrides) -> dict:
    """A torchvision release (V1: 224 px training; V2: 176 px training, 232 px resize at test)."""
    return imagenet_cfg(url=TORCHVISION_URL + file, file_format="torchvision", top1=top1, source="torchvision",
                        **overrides)


def msra_cfg(file: str, top1: float) -> dict:
    """The paper's Caffe weights as detectron2 ships them: caffe style, BGR, 0-255, mean subtraction only."""
    return imagenet_cfg(url=DETECTRON2_URL + file, file_format="caffe2", top1=top1, style="caffe", channel_order="BGR",
                        pixel_range=255.0, mean=MSRA_BGR_MEAN, std=MSRA_BGR_STD, source="MSRA via detectron2")


def fair_cfg(file: str) -> dict:
    """FAIR's Caffe2-trained weights as detectron2 ships them: pytorch style (detectron2's STRIDE_IN_1X1=False),
    BGR, 0-255, ImageNet mean and std in those units (detectron2's PIXEL_MEAN and PIXEL_STD); no top-1 published."""
    return imagenet_cfg(url=DETECTRON2_FAIR_URL + file, file_format="caffe2", channel_order="BGR", pixel_range=255.0,
                        mean=MSRA_BGR_MEAN, std=FAIR_BGR_STD, source="FAIR (Caffe2) via detectron2")


def akamaster_cfg(file: str, top1: float) -> dict:
    """Yerlan Idelbayev's CIFAR-10 ResNets: option A with the zero channels on both sides of the input's
    (shortcut_pad="center"), inputs normalised with ImageNet's mean and std (the repository's trainer.py)."""
    return cifar_cfg(url=AKAMASTER_URL + file, file_format="akamaster", top1=top1, shortcut_pad="center",
                     mean=IMAGENET_MEAN, std=IMAGENET_STD, source="akamaster/pytorch_resnet_cifar10")


def timm_v2_cfg(hf_hub_id: str, crop_pct: float) -> dict:
    """timm's pre-activation ResNetV2 weights (bicubic, mean and std 0.5); timm publishes no top-1 with them here."""
    return imagenet_cfg(hf_hub_id=hf_hub_id, file_format="timm_v2", crop_pct=crop_pct, interpolation="bicubic",
                        mean=INCEPTION_MEAN, std=INCEPTION_STD, source="timm")


# torchvision's V2 recipe: trained at 176 px, evaluated on 224 px center crops of images resized to 232 px (224 / 0.965
# rounded; torchvision's ImageClassification(crop_size=224, resize_size=232)), as timm's test_input_size says
TV2 = dict(input_size=(3, 176, 176), pool_size=(6, 6), crop_pct=0.965, test_input_size=(3, 224, 224))

# Per architecture, its tags; the first tag is the default for `pretrained=True`, except for the CIFAR nets, whose
# plain names keep building the nets trained here (see `backbones.builders.resolve_pretrained_cfg`). Top-1 as
# published (ImageNet val).
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
    "resnext50_32x4d": {
        "tv_in1k": torchvision_cfg("resnext50_32x4d-7cdf4587.pth", 77.618),
        "tv2_in1k": torchvision_cfg("resnext50_32x4d-1a0047aa.pth", 81.198, **TV2),
    },
    "resnext101_32x8d": {
        "tv_in1k": torchvision_cfg("resnext101_32x8d-8ba56ff5.pth", 79.312),
        "tv2_in1k": torchvision_cfg("resnext101_32x8d-110c445d.pth", 82.834, **TV2),
        "fair_in1k": fair_cfg("X-101-32x8d.pkl"),
    },
    "resnext101_64x4d": {  # torchvision's only release, trained with its V2 recipe (176 px, 232 px resize at test)
        "tv_in1k": torchvision_cfg("resnext101_64x4d-173b62eb.pth", 83.246, **TV2),
    },
    "wide_resnet50_2": {
        "tv_in1k": torchvision_cfg("wide_resnet50_2-95faca4d.pth", 78.468),
        "tv2_in1k": torchvision_cfg("wide_resnet50_2-9ba9bcbe.pth", 81.602, **TV2),
    },
    "wide_resnet101_2": {
        "tv_in1k": torchvision_cfg("wide_resnet101_2-32ee1156.pth", 78.848),
        "tv2_in1k": torchvision_cfg("wide_resnet101_2-d733dc28.pth", 82.510, **TV2),
    },
    "resnetv2_18": {"ra4_e3600_r224_in1k": timm_v2_cfg("timm/resnetv2_18.ra4_e3600_r224_in1k", 0.9)},
    "resnetv2_34": {"ra4_e3600_r224_in1k": timm_v2_cfg("timm/resnetv2_34.ra4_e3600_r224_in1k", 0.9)},
    "resnetv2_50": {"a1h_in1k": timm_v2_cfg("timm/resnetv2_50.a1h_in1k", 0.95)},
    "resnetv2_101": {"a1h_in1k": timm_v2_cfg("timm/resnetv2_101.a1h_in1k", 0.95)},
    # CIFAR-10 test top-1, 100 - the error akamaster/pytorch_resnet_cifar10's README publishes
    "resnet20_cifar": {"akamaster_cifar10": akamaster_cfg("resnet20-12fca82f.th", 91.73)},
    "resnet32_cifar": {"akamaster_cifar10": akamaster_cfg("resnet32-d509ac18.th", 92.63)},
    "resnet44_cifar": {"akamaster_cifar10": akamaster_cfg("resnet44-014dd654.th", 93.10)},
    "resnet56_cifar": {"akamaster_cifar10": akamaster_cfg("resnet56-4bfd9763.th", 93.39)},
    "resnet110_cifar": {"akamaster_cifar10": akamaster_cfg("resnet110-1d1ed7c2.th", 93.68)},
    "resnet1202_cifar": {"akamaster_cifar10": akamaster_cfg("resnet1202-f3b1deed.th", 93.82)},
}
