"""pretrained_cfg follows timm: mean and std in 0-1 units for every tag, so timm's own `resolve_data_config` gives
the input our detectors and classifiers use; BGR / 0-255 weights say so in the extra fields."""
import pytest
import timm.data
import torch

import backbones
import heads
from backbones.normalization import in_unit_range, unit_range_normalization
from backbones.pretrained import PRETRAINED_CFGS
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.tasks.classification import eval_sizes, normalisation

TAGS = [f"{arch}.{tag}" for arch, tags in PRETRAINED_CFGS.items() for tag in tags]


@pytest.mark.parametrize("name", TAGS)
def test_every_tag_states_mean_and_std_in_0_1_units(name):
    arch, _, tag = name.partition(".")
    cfg = PRETRAINED_CFGS[arch][tag]
    assert all(0 <= m <= 1 for m in cfg["mean"]) and all(0 < s <= 1 for s in cfg["std"])
    assert in_unit_range(cfg) == dict(cfg)
    if cfg["channel_order"] == "BGR":
        assert cfg["pixel_range"] == 255.0


@pytest.mark.parametrize("name", ["resnet50.tv_in1k", "resnet50.tv2_in1k", "resnet18.tv_in1k", "resnet20_cifar"])
def test_timms_data_config_is_the_input_of_our_detectors_and_classifiers(name):
    with torch.device("meta"):
        model = backbones.create_backbone(name)
    resolved = timm.data.resolve_data_config(model=model)
    mean, std, channel_order = unit_range_normalization(model.pretrained_cfg)
    assert channel_order == "RGB" and resolved["mean"] == tuple(mean) and resolved["std"] == tuple(std)
    data = CLASSIFICATION_DEFAULTS["data"]
    assert normalisation(data, model) == (resolved["mean"], resolved["std"], "RGB")
    resize, crop = eval_sizes(dict(data, eval_crop="pretrained"), model)
    assert crop == timm.data.resolve_data_config(model=model, use_test_size=True)["input_size"][-1]
    assert resize == round(crop / resolved["crop_pct"])
    transform = heads.RCNNTransform(800, 1333, model.pretrained_cfg)  # what detectors on this backbone normalise with
    assert tuple(transform.image_mean) == resolved["mean"] and tuple(transform.image_std) == resolved["std"]


def test_configs_saved_in_units_of_their_pixel_range_are_read_in_0_1_units():
    legacy = dict(mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395), channel_order="BGR", pixel_range=255.0)
    converted = in_unit_range(legacy)
    assert converted["mean"] == pytest.approx([0.406, 0.456, 0.485]) and converted["std"] == pytest.approx(
        [0.225, 0.224, 0.229])
    assert unit_range_normalization(legacy)[:2] == unit_range_normalization(converted)[:2]
