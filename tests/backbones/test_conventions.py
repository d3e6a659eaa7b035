"""A file given by path carries the conventions of its format: the MSRA Caffe2 file builds the `msra_in1k` model
(caffe style, BGR 0-255 input) through create_backbone, the detectors and both configs; FAIR, akamaster and timm
files theirs; a detectron2 backbone needs a tag; an explicit option wins with a warning."""
import logging

import pytest
import torch

import backbones
import heads
from backbones import CheckpointError
from tests.backbones.weight_files import randomised, save_pickle, to_caffe2
from workbench.benchmarks.detector_inference import realistic_predictors
from workbench.config.loader import load_config
from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS
from workbench.engine.loop import TrainState
from workbench.tasks.classification_model import build_classifier, classifier_from_state
from workbench.tasks.detection import build_model

CONVENTIONS = ("style", "shortcut_pad", "channel_order", "pixel_range", "mean", "std")


def conventions_of(model) -> dict:
    return {key: model.pretrained_cfg[key] for key in CONVENTIONS}


@pytest.fixture(scope="module")
def msra_file(tmp_path_factory) -> str:
    """An MSRA-layout R-50.pkl written from a random caffe-style ResNet-50 (its stem scaled for 0-255 input)."""
    torch.manual_seed(0)
    source = randomised(backbones.create_backbone("resnet50", style="caffe"))
    with torch.no_grad():
        source.conv1.weight.div_(255)
    return save_pickle(to_caffe2(source.state_dict()), tmp_path_factory.mktemp("msra") / "R-50.pkl")


@pytest.fixture(scope="module")
def msra_tag_model(msra_file):
    return backbones.create_backbone("resnet50.msra_in1k", pretrained=msra_file).eval()


def test_an_msra_file_by_path_builds_the_msra_tags_model(msra_file, msra_tag_model):
    model = backbones.create_backbone("resnet50", pretrained=msra_file).eval()
    assert conventions_of(model) == conventions_of(msra_tag_model)
    assert model.pretrained_cfg["style"] == "caffe" and model.pretrained_cfg["channel_order"] == "BGR"
    assert model.pretrained_cfg["file"] == msra_file and model.pretrained_cfg["file_format"] == "caffe2"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), msra_tag_model(x))
        # the negative control: the stride on the 3x3 gives other logits
        default_style = backbones.create_backbone("resnet50.tv_in1k", pretrained=msra_file).eval()
        assert not torch.allclose(default_style(x), model(x), atol=1e-3)


def test_an_explicit_style_that_contradicts_the_file_is_built_with_a_warning(msra_file, caplog):
    with caplog.at_level(logging.WARNING, logger="backbones.conventions"):
        model = backbones.create_backbone("resnet50", pretrained=msra_file, style="pytorch")
    assert model.pretrained_cfg["style"] == "pytorch" and model.layer2[0].conv2.stride == (2, 2)
    assert model.pretrained_cfg["channel_order"] == "BGR"  # the input conventions stay the file's
    assert "R-50.pkl (caffe2 format) was trained with style='caffe'; building style='pytorch' as asked" in caplog.text


@pytest.mark.parametrize("builder", ["python", "config"])
def test_a_detector_on_an_msra_file_normalises_as_the_tag(msra_file, builder):
    """Same detections as the detector built on the tag: the weights, the stride and the BGR 0-255 input."""
    options = dict(num_classes=3, min_size=96, max_size=128, box_score_thresh=0.0, box_detections_per_img=10)

    def detector(backbone: str):
        torch.manual_seed(0)  # the same heads
        if builder == "python":
            model = heads.faster_rcnn(backbone, backbone_weights=msra_file, **options)
        else:
            overrides = [f"model.backbone={backbone}", f"model.backbone_weights={msra_file}",
                         "model.kind=faster_rcnn", "model.num_classes=3"]
            overrides += [f"model.options.{key}={value}" for key, value in options.items() if key != "num_classes"]
            model = build_model(load_config(DETECTION_DEFAULTS, None, overrides), torch.device("cpu"))
        realistic_predictors(model)
        return model.eval()

    model, tagged = detector("resnet50"), detector("resnet50.msra_in1k")
    assert conventions_of(model) == conventions_of(tagged)
    assert model.transform.channel_order == "BGR" and model.transform.image_std == [1 / 255] * 3
    image = torch.rand(3, 96, 128)
    with torch.no_grad():
        got, want = model([image])[0], tagged([image])[0]
    assert len(want["boxes"]) > 0
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_a_classification_config_on_an_msra_file_takes_its_conventions(msra_file, msra_tag_model):
    config = load_config(CLASSIFICATION_DEFAULTS, None, ["model.backbone=resnet50", "model.num_classes=1000",
                                                         f"model.backbone_weights={msra_file}"])
    assert conventions_of(build_classifier(config["model"])) == conventions_of(msra_tag_model)


def test_a_grouped_caffe2_file_takes_fairs_conventions(tmp_path):
    source = randomised(backbones.create_backbone("resnext50_32x4d"))
    path = save_pickle(to_caffe2(source.state_dict()), tmp_path / "X-50-32x4d.pkl")
    model = backbones.create_backbone("resnext50_32x4d", pretrained=path)
    fair = backbones.create_backbone("resnext101_32x8d.fair_in1k")
    assert conventions_of(model) == conventions_of(fair)


def test_an_akamaster_file_by_path_gets_centred_padding_and_its_normalisation(tmp_path):
    tagged = backbones.create_backbone("resnet20_cifar.akamaster_cifar10")
    state = {("linear." + k[3:] if k.startswith("fc.") else k): v for k, v in tagged.state_dict().items()}
    torch.save(state, tmp_path / "resnet20.th")
    model = backbones.create_backbone("resnet20_cifar", pretrained=tmp_path / "resnet20.th")
    assert conventions_of(model) == conventions_of(tagged) and model.pretrained_cfg["shortcut_pad"] == "center"


def test_a_detectron2_backbone_needs_a_tag(tmp_path):
    state = {"stem.conv1.weight": torch.zeros(64, 3, 7, 7)}
    torch.save(state, tmp_path / "d2.pth")
    with pytest.raises(CheckpointError, match=r"d2.pth is a detectron2 file: a detectron2 backbone does not say "
                                              r"whether .*; name the tag whose conventions it has, e.g. "
                                              r"create_backbone\('resnet50.tv_in1k', pretrained=...\) \(tags: "
                                              r"resnet50.tv_in1k, .*resnet50.msra_in1k\)"):
        backbones.create_backbone("resnet50", pretrained=tmp_path / "d2.pth")


def test_a_named_tag_holds_over_the_files_format_with_a_warning(msra_file, caplog):
    with caplog.at_level(logging.WARNING, logger="backbones.conventions"):
        model = backbones.create_backbone("resnet50.tv_in1k", pretrained=msra_file)
    assert model.pretrained_cfg["channel_order"] == "RGB" and model.pretrained_cfg["style"] == "pytorch"
    assert "R-50.pkl is a caffe2 file, whose weights expect style='caffe'" in caplog.text
    assert "keeping the conventions of the tag resnet50.tv_in1k" in caplog.text


@pytest.mark.parametrize("name", ["resnet18", "resnet20_cifar", "resnetv2_18"])
def test_a_torchvision_format_file_keeps_the_architectures_defaults(name, tmp_path):
    model = backbones.create_backbone(name)
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    loaded = backbones.create_backbone(name, pretrained=tmp_path / "weights.pth")
    assert conventions_of(loaded) == conventions_of(model)


def training_checkpoint(model, path) -> str:
    """What the training loop saves of `model` (`TrainState.state_dict`): its weights and conventions."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainState(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0),
                       torch.amp.GradScaler("cpu", enabled=False))
    torch.save(state.state_dict(config={}), path)
    return str(path)


def test_our_checkpoints_state_the_conventions_they_were_trained_with(msra_file, msra_tag_model, tmp_path):
    """A classifier trained on the MSRA file (caffe style, BGR) saves them: given by path to the plain name, or as
    the classifier of eval_cls --checkpoint, it is rebuilt so; a file without them keeps the defaults."""
    path = training_checkpoint(backbones.create_backbone("resnet50", pretrained=msra_file), tmp_path / "cls.pth")
    assert torch.load(path, weights_only=True)["conventions"] == conventions_of(msra_tag_model)
    assert conventions_of(backbones.create_backbone("resnet50", pretrained=path)) == conventions_of(msra_tag_model)
    state = torch.load(path, weights_only=True)
    config = load_config(CLASSIFICATION_DEFAULTS, None, ["model.backbone=resnet50", "model.num_classes=1000"])
    model, _ = classifier_from_state(dict(state, config=config), path)
    assert conventions_of(model) == conventions_of(msra_tag_model) and model.layer2[0].conv1.stride == (2, 2)
    del state["conventions"]
    torch.save(state, tmp_path / "bare.pth")
    assert backbones.create_backbone("resnet50", pretrained=tmp_path / "bare.pth").pretrained_cfg["style"] == "pytorch"


def test_a_detector_checkpoint_is_rebuilt_with_the_conventions_it_was_trained_with(msra_file, tmp_path):
    trained = heads.faster_rcnn("resnet50", num_classes=3, backbone_weights=msra_file)
    path = training_checkpoint(trained, tmp_path / "det.pth")
    model = heads.faster_rcnn("resnet50", num_classes=3, weights=path)  # as eval_det.py and predict.py build it
    assert conventions_of(model) == conventions_of(trained) and model.transform.channel_order == "BGR"
    assert model.backbone.body.layer2[0].conv1.stride == (2, 2)
