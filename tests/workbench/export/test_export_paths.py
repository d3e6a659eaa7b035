"""Every export path (features-only backbone, classifier, Faster / Mask R-CNN FPN, Mask R-CNN C4) x (ONNX,
TorchScript) writes a file that passed verification on images of two sizes, with its metadata, and leaves the
caller's model as it was."""
import pytest
import torch

import backbones
from heads.ops.roi_align import MultiScaleRoIAlign
from workbench.export import FORMATS, load_onnx, read_metadata
from workbench.export.exportable import exportable_copy
from workbench.export.pipeline import unverified_path
from workbench.export.torchscript import load_torchscript
from workbench.export.verify import verify_outputs

# every path: (kind, neck); the backbone is features-only
PATHS = [("backbone", None), ("classifier", None), ("faster_rcnn", "fpn"), ("mask_rcnn", "fpn"), ("mask_rcnn", "c4")]
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning"),
              pytest.mark.filterwarnings("ignore:RCNN always returns a .Losses, Detections. tuple:UserWarning")]

CASES = [(kind, neck, fmt) for kind, neck in PATHS for fmt in FORMATS]
OUTPUTS = {"classifier": ["logits"], "faster_rcnn": ["boxes", "labels", "scores"],
           "mask_rcnn": ["boxes", "labels", "scores", "masks"]}


@pytest.mark.parametrize("kind,neck,fmt", CASES, ids=lambda v: str(v))
def test_export_writes_a_verified_file_with_its_metadata(kind, neck, fmt, exported, capsys):
    subject, result = exported(kind, neck, fmt)
    assert result.path.is_file() and not unverified_path(result.path).exists()
    assert result.verification.ok
    comparisons = result.verification.comparisons
    if subject.is_detector:  # detections were compared, not only counted
        assert comparisons["boxes"].reference_max > 0
        assert set(comparisons) == {"boxes", "scores"} | ({"masks"} if kind == "mask_rcnn" else set())
    if fmt == "torchscript":  # the same graph as the eager model: the same bits
        assert all(c.max_diff == 0 for c in comparisons.values())
    metadata = read_metadata(result.path)
    assert metadata == result.metadata
    assert metadata["kind"] == kind and metadata["format"] == fmt and metadata["architecture"] == "resnet18"
    names = [output["name"] for output in metadata["outputs"]]
    assert names == OUTPUTS.get(kind, [f"feature_{i}" for i in range(5)])
    if fmt == "onnx":
        assert metadata["opset"] == 17
        onnx = pytest.importorskip("onnx")
        model = onnx.load(str(result.path))
        assert model.opset_import[0].version == 17
        assert [i.name for i in model.graph.input] == [metadata["inputs"][0]["name"]]
        dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == (["batch", 3, "height", "width"] if not subject.is_detector else [3, "height", "width"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_detector_files_resize_as_eager_pytorch_does(fmt, exported):
    """torchvision's scripted and traced resizing computes sizes in float32 and gives 127 px where eager PyTorch
    gives 128 for these images (min_size 128); the exported files follow eager PyTorch."""
    subject, result = exported("faster_rcnn", "fpn", fmt)
    runner = load_onnx(result.path) if fmt == "onnx" else load_torchscript(result.path)
    images = [torch.rand(3, 97, 97), torch.rand(3, 61, 61)]
    verification = verify_outputs(exportable_copy(subject.model, fmt), runner, images, "faster_rcnn", [])
    assert verification.ok, verification.lines()
    assert verification.comparisons["boxes"].reference_max > 0


def test_export_leaves_the_callers_model_as_it_was(exported):
    subject, _ = exported("mask_rcnn", "fpn", "onnx")
    model = subject.model
    assert isinstance(model.roi_heads.box_roi_pool, MultiScaleRoIAlign)
    extractors = [m for m in model.modules() if isinstance(m, backbones.FeatureExtractor)]
    assert extractors and all(m.fused for m in extractors)  # the fast inference path is still on


def test_torchscript_detector_returns_losses_and_detections(exported):
    _, result = exported("faster_rcnn", "fpn", "torchscript")
    module = torch.jit.load(str(result.path))
    losses, detections = module([torch.rand(3, 90, 110)])
    assert losses == {} and set(detections[0]) == {"boxes", "labels", "scores"}
