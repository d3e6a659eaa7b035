"""Verification fails loudly: an exported file that computes something else than the PyTorch model, or an output
beyond the tolerance, is a UserError naming the output, its difference and the tolerance, and nothing is written at
the output path; detections are paired by label and box whatever their order."""
import pytest
import torch

from workbench.errors import UserError
from workbench.export import export_and_verify, load_onnx
from workbench.export.exportable import exportable_copy
from workbench.export.pipeline import unverified_path
from workbench.export.sample_images import random_inputs
from workbench.export.torchscript import load_torchscript
from workbench.export.verify import (
    DEFAULT_TOLERANCES,
    Verification,
    compare_detections,
    match_detections,
    verify_outputs,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose first convolution's weights moved by 1%."""
    model = exportable_copy(model)
    with torch.no_grad():
        model.conv1.weight.mul_(1.01)
    return model


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_model_that_differs_from_the_file_fails_verification(fmt, exported):
    subject, result = exported("backbone", None, fmt)
    runner = load_onnx(result.path) if fmt == "onnx" else load_torchscript(result.path)
    names = [output["name"] for output in result.metadata["outputs"]]
    verification = verify_outputs(perturbed(subject.model), runner, random_inputs(subject), "backbone", names)
    assert not verification.ok and len(verification.failures()) == len(names)
    assert verification.failures()[0].startswith("feature_0: max |diff|") and "FAILED" in verification.failures()[0]


def test_export_beyond_the_tolerance_raises_and_writes_nothing(exported, tmp_path):
    subject, _ = exported("classifier", None, "onnx")
    output = tmp_path / "classifier.onnx"
    with pytest.raises(UserError, match=r"differs from the PyTorch model: logits: max \|diff\| .*tolerance 1e-12"):
        export_and_verify(subject, output, "onnx", tolerance=1e-12)
    assert not output.exists() and unverified_path(output).is_file()


def test_default_tolerances():
    assert DEFAULT_TOLERANCES == {"backbone": 1e-4, "classifier": 1e-4, "faster_rcnn": 1e-3, "mask_rcnn": 1e-3}


def detections(boxes, labels, scores):
    return dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor(labels),
                scores=torch.tensor(scores))


def test_detections_are_paired_by_label_and_nearest_box():
    reference = detections([[0, 0, 10, 10], [5, 5, 20, 20], [0, 0, 10, 10]], [1, 1, 2], [0.9, 0.9, 0.5])
    swapped = detections([[5, 5, 20, 20.001], [0, 0, 10, 10], [0, 0, 10, 10]], [1, 1, 2], [0.9, 0.9, 0.5])
    assert match_detections(reference, swapped) == [1, 0, 2]
    assert match_detections(reference, detections([[0, 0, 10, 10]], [1], [0.9])).startswith("1 detections exported")
    relabelled = detections([[0, 0, 10, 10], [5, 5, 20, 20], [0, 0, 10, 10]], [1, 2, 2], [0.9, 0.9, 0.5])
    assert "has no exported detection of that label" in match_detections(reference, relabelled)

    verification = Verification()
    compare_detections(verification, reference, None, swapped, torch.zeros(3, 32, 32), 1e-3, "image 0")
    assert verification.ok and verification.comparisons["boxes"].max_diff == pytest.approx(0.001, abs=1e-6)
    compare_detections(verification, reference, None, relabelled, torch.zeros(3, 32, 32), 1e-3, "image 1")
    assert not verification.ok and verification.failures()[0].startswith("detections of image 1:")


def test_a_detector_that_differs_from_the_file_fails_verification(exported):
    subject, result = exported("mask_rcnn", "fpn", "torchscript")
    model = exportable_copy(subject.model)
    with torch.no_grad():
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.add_(1.0)  # only the masks change
    verification = verify_outputs(model, load_torchscript(result.path), random_inputs(subject), "mask_rcnn", [])
    assert [line.split(":")[0] for line in verification.failures()] == ["masks"]
    assert verification.comparisons["boxes"].max_diff == 0

