"""Export of backbones, classifiers and Faster / Mask R-CNN detectors to TorchScript and ONNX, verified at export time.

Every export runs the written file (`torch.jit.load`, or an onnxruntime CPU session) on the same images as the PyTorch
model and fails with a `workbench.errors.UserError` when an output differs by more than the tolerance. ONNX files
carry a JSON description of the model (kind, inputs, outputs, class names) under the metadata key "workbench";
TorchScript files carry the same JSON as the extra file "workbench.json".

    from workbench.export import export_and_verify, subject_for, OnnxDetector
    export_and_verify(subject_for(detector, class_names=names), "detector.onnx", "onnx")
    detector = OnnxDetector("detector.onnx")        # detector([image]) -> [{"boxes", "labels", "scores", "masks"}]

onnx and onnxruntime are an optional extra (`pip install -e ".[export]"`); they are imported only when needed.
The command line is `tools/export.py`.
"""
from .metadata import read_metadata
from .onnx_runtime import OnnxBackbone, OnnxClassifier, OnnxDetector, load_onnx
from .pipeline import FORMATS, export_and_verify
from .subjects import ExportSubject, subject_for

__all__ = [
    "FORMATS", "ExportSubject", "OnnxBackbone", "OnnxClassifier", "OnnxDetector", "export_and_verify", "load_onnx",
    "read_metadata", "subject_for",
]
