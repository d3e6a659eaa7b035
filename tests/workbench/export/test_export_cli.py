"""tools/export.py: a train_cls.py checkpoint and a train_det.py config with weights, exported through the command
line and verified on image files; bad command lines and a missing `export` extra are one error line, exit code 2."""
import json
import sys

import pytest
import torch

import backbones
from workbench import cli
from workbench.cli import export as export_cli
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.export import OnnxClassifier, OnnxDetector, read_metadata
from workbench.export.sample_images import file_inputs
from workbench.export.subjects import classifier_checkpoint_subject
from workbench.tasks.detection import build_model

DEMO_CONFIG = "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml"

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


@pytest.fixture
def export(tool_parser):
    """`export(argv)`: tools/export.py's main on `argv`, through workbench.cli.run."""
    return lambda argv: cli.run(export_cli.export, tool_parser("export"), [str(a) for a in argv])


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory):
    """A train_cls.py checkpoint of a random 3-class resnet18 with its own normalisation."""
    torch.manual_seed(0)
    model = backbones.create_backbone("resnet18", num_classes=3)
    config = {"model": {"backbone": "resnet18", "num_classes": 3, "backbone_weights": None, "options": {}},
              "data": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    path = tmp_path_factory.mktemp("cls") / "model_final.pth"
    torch.save({"model": model.state_dict(), "config": config, "iteration": 3}, path)
    return path, model.eval()


def test_classifier_checkpoint_to_onnx(export, classifier_checkpoint, tiny_shapes, tmp_path, capsys):
    checkpoint, model = classifier_checkpoint
    output = tmp_path / "classifier.onnx"
    images = sorted((tiny_shapes / "val").glob("*.png"))[:2]
    result = export(["--checkpoint", checkpoint, "--output", output, "--class-names", "circle", "square", "triangle",
                     "--images", *images])
    printed = capsys.readouterr().out
    assert "onnx classifier against PyTorch on 2 image files: 1x3x224x224" in printed
    assert "logits: max |diff|" in printed and f"wrote {output}" in printed
    classifier = OnnxClassifier(output)
    assert classifier.class_names == ["circle", "square", "triangle"] == result.metadata["class_names"]
    assert classifier.metadata["normalization"] == {"mean": [0.5] * 3, "std": [0.25] * 3, "channel_order": "RGB",
                                                    "pixel_range": 1.0}
    batch = file_inputs(classifier_checkpoint_subject(checkpoint), images)[0]  # normalised with the checkpoint's
    with torch.no_grad():
        torch.testing.assert_close(classifier(batch), model(batch), rtol=1e-4, atol=1e-4)


def test_detector_config_and_weights_to_onnx_and_torchscript(export, quick_overrides, tiny_shapes, tmp_path, capsys):
    overrides = quick_overrides + ["model.options.box_score_thresh=0.0"]
    config = load_config(DETECTION_DEFAULTS, DEMO_CONFIG, overrides)
    torch.manual_seed(0)
    weights = tmp_path / "model_final.pth"
    torch.save({"model": build_model(config, torch.device("cpu")).state_dict()}, weights)
    images = sorted((tiny_shapes / "val").glob("*.png"))[:2]
    output = tmp_path / "mask_rcnn.onnx"
    export(["--config", DEMO_CONFIG, "--weights", weights, "--output", output, *overrides, "--images", *images])
    printed = capsys.readouterr().out
    assert "onnx mask_rcnn against PyTorch on 2 image files: 3x64x64, 3x64x64" in printed
    assert "masks: max |diff|" in printed and "no detections" not in printed
    detector = OnnxDetector(output)
    categories = json.loads((tiny_shapes / "annotations" / "instances_val.json").read_text())["categories"]
    assert detector.class_names == ["__background__"] + [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
    assert detector.metadata["labels_are_category_ids"] is False and detector.metadata["min_size"] == 64

    scripted = tmp_path / "mask_rcnn.pt"
    argv = ["--config", DEMO_CONFIG, "--weights", weights, "--output", scripted, "--format", "torchscript"]
    with pytest.raises(SystemExit):  # the overrides after --class-names would be taken as names
        export(argv + ["--class-names", "a", "b", "c", *overrides])
    assert "looks like a config override; put key=value overrides before --class-names" in capsys.readouterr().err
    export(argv + [*overrides, "--class-names", "a", "b", "c"])
    assert read_metadata(scripted)["class_names"] == ["__background__", "a", "b", "c"]


@pytest.mark.parametrize("argv,message", [
    (["--backbone", "resnet18", "--checkpoint", "x.pth"], "give one of --checkpoint"),
    (["--config", DEMO_CONFIG], "--config needs --weights"),
    (["--backbone", "resnet18", "--format", "onnx", "--opset", "13"], "--opset 13 is not supported; choose 17..20"),
    (["--backbone", "resnet9000"], "unknown backbone 'resnet9000'"),
    (["--backbone", "resnet18", "--class-names", "a", "b"], "2 class names given, but the classifier has 1000"),
    (["--checkpoint", "missing.pth"], "checkpoint not found: missing.pth"),
])
def test_bad_command_lines_are_one_error_line(argv, message, export, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        export(argv + ["--output", tmp_path / "model.onnx"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "model.onnx").exists()


def test_a_detector_checkpoint_of_other_classes_is_refused_as_eval_det_refuses_it(export, quick_overrides, tmp_path,
                                                                                   capsys):
    weights = tmp_path / "coco.pth"
    torch.save({"roi_heads.box_predictor.cls_score.weight": torch.zeros(91, 8)}, weights)
    with pytest.raises(SystemExit) as exit:
        export(["--config", DEMO_CONFIG, "--weights", weights, "--output", tmp_path / "model.onnx", *quick_overrides])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "coco.pth has 91 class outputs" in error
    assert "set model.num_classes=91 and model.labels_are_category_ids=true" in error
    assert not (tmp_path / "model.onnx").exists()


def test_onnx_without_the_extra_says_which_extra_to_install(export, classifier_checkpoint, monkeypatch, tmp_path,
                                                             capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    with pytest.raises(SystemExit) as exit:
        export(["--checkpoint", classifier_checkpoint[0], "--output", tmp_path / "classifier.onnx"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and 'pip install -e ".[export]"' in error
    # TorchScript needs no extra
    export(["--checkpoint", classifier_checkpoint[0], "--output", tmp_path / "classifier.pt", "--format",
            "torchscript"])
    assert read_metadata(tmp_path / "classifier.pt")["kind"] == "classifier"
