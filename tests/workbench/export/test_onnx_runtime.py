"""Running exported ONNX files: OnnxDetector returns what the PyTorch detector returns in eval mode, OnnxClassifier
its logits; the metadata makes the round trip; without the `export` extra, one message says what to install."""
import sys

import pytest
import torch

from workbench.errors import UserError
from workbench.export import OnnxBackbone, OnnxClassifier, OnnxDetector, export_and_verify, load_onnx, read_metadata
from workbench.export.dependencies import INSTALL_HINT
from workbench.export.verify import match_detections

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


def test_onnx_detector_returns_the_pytorch_detections(exported):
    subject, result = exported("mask_rcnn", "fpn", "onnx")
    detector = OnnxDetector(result.path)
    images = [torch.rand(3, 112, 90), torch.rand(3, 70, 128)]  # sizes the export never saw
    model = subject.model.eval()  # as users run it: the fast CPU path on
    with torch.no_grad():  # one image at a time: a batch pads its images to one size, which changes the detections
        expected = [model([image])[0] for image in images]
    got = detector(images)
    assert len(got) == 2
    for out, ref, image in zip(got, expected, images):
        assert set(out) == {"boxes", "labels", "scores", "masks"} and len(out["boxes"]) == len(ref["boxes"]) > 0
        assert out["masks"].shape == (len(ref["boxes"]), 1, *image.shape[-2:])
        for key in ("boxes", "labels", "scores", "masks"):
            assert out[key].dtype == ref[key].dtype and out[key].device == ref[key].device, key
        order = match_detections(ref, out)  # near-equal scores of random weights may swap neighbours
        out = {key: value[order] for key, value in out.items()}
        torch.testing.assert_close(out["labels"], ref["labels"])
        torch.testing.assert_close(out["boxes"], ref["boxes"], rtol=0, atol=1e-3 * 128)
        torch.testing.assert_close(out["scores"], ref["scores"], rtol=0, atol=1e-3)
        # masks as returned: pasted along boxes whose corners, rounded to pixels, may differ by one
        assert (out["masks"] - ref["masks"]).abs().mean() < 1e-3


def test_metadata_round_trip(exported):
    subject, result = exported("mask_rcnn", "fpn", "onnx")
    detector = OnnxDetector(result.path)
    assert detector.metadata == read_metadata(result.path) == result.metadata
    assert detector.class_names == ["__background__", "circle", "square"]
    assert detector.metadata["labels_are_category_ids"] is True
    assert detector.metadata["num_classes"] == 3 and detector.metadata["min_size"] == 128
    assert detector.metadata["normalization"]["mean"] == list(subject.model.pretrained_cfg["mean"])
    _, scripted = exported("mask_rcnn", "fpn", "torchscript")
    assert {k: v for k, v in read_metadata(scripted.path).items() if k not in ("format", "call", "opset")} == {
        k: v for k, v in detector.metadata.items() if k not in ("format", "call", "opset")}


def test_onnx_classifier_and_backbone(exported):
    subject, result = exported("classifier", None, "onnx")
    classifier = load_onnx(result.path)
    assert isinstance(classifier, OnnxClassifier) and classifier.class_names == list("abcde")
    batch = torch.randn(3, 3, 72, 56)
    with torch.no_grad():
        torch.testing.assert_close(classifier(batch), subject.model.eval()(batch), rtol=1e-4, atol=1e-4)
    subject, result = exported("backbone", None, "onnx")
    backbone = load_onnx(result.path)
    assert isinstance(backbone, OnnxBackbone)
    with torch.no_grad():
        for got, expected in zip(backbone(batch), subject.model.eval()(batch), strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(UserError, match="holds a backbone, not a faster_rcnn or mask_rcnn; load it with "
                                        "workbench.export.OnnxBackbone"):
        OnnxDetector(result.path)


def test_a_file_without_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.onnx"
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.rand(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(UserError, match="carries no 'workbench' metadata"):
        OnnxClassifier(path)


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_without_the_export_extra_one_message_says_what_to_install(module, exported, monkeypatch, tmp_path):
    subject, result = exported("classifier", None, "onnx")
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(UserError, match=f"optional package '{module}'.*" + INSTALL_HINT.replace(".", r"\.")
                       .replace("[", r"\[").replace("]", r"\]")):
        export_and_verify(subject, tmp_path / "classifier.onnx", "onnx")
    assert not (tmp_path / "classifier.onnx").exists()
    if module == "onnxruntime":
        with pytest.raises(UserError, match="pip install"):
            OnnxClassifier(result.path)
