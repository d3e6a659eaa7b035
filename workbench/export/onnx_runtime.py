"""Inference from an exported ONNX file with onnxruntime, with the calling convention of the PyTorch models.

    detector = OnnxDetector("mask_rcnn.onnx")
    outputs = detector([image])            # image: RGB float tensor [3, H, W] in 0-1, any size
    outputs[0]["boxes"], outputs[0]["labels"], outputs[0]["scores"], outputs[0]["masks"]
    detector.class_names[label], detector.metadata["labels_are_category_ids"]

`OnnxDetector` returns what a torchvision detector returns in eval mode (one dict of torch tensors per image: boxes
[N, 4] float32 x1 y1 x2 y2 in input pixels, labels [N] int64, scores [N] float32 highest first, and for Mask R-CNN
masks [N, 1, H, W] float32 probabilities in the input's size), on the device of the image. `OnnxClassifier` returns
logits, `OnnxBackbone` the list of maps. Each has `.metadata`, the JSON the file carries (`workbench.export.metadata`).
"""
from pathlib import Path

import torch
from torch import Tensor

from workbench.errors import MissingFileError, UserError

from .dependencies import require
from .metadata import METADATA_KEY, parse
from .subjects import DETECTOR_KINDS


class OnnxModel:
    """An ONNX file written by workbench.export, in an onnxruntime session.

    Args:
        path: the .onnx file.
        providers: onnxruntime execution providers; default: the CPU.
        threads: intra-op threads; default: onnxruntime's (all cores).

    Attributes:
        metadata: the description the file carries (kind, inputs, outputs, class names, normalisation...).
        session: the onnxruntime InferenceSession.

    Raises:
        MissingFileError: there is no such file.
        UserError: the file carries no workbench metadata, or holds another kind of model than the class runs;
            onnxruntime is not installed.
    """

    kinds: tuple[str, ...] = ()

    def __init__(self, path: str | Path, *, providers: list[str] | None = None, threads: int | None = None):
        if not Path(path).is_file():
            raise MissingFileError(f"ONNX file not found: {path}")
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        self.metadata = parse(self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
        if self.kinds and self.metadata["kind"] not in self.kinds:
            loader = LOADERS[self.metadata["kind"]].__name__
            raise UserError(f"{path} holds a {self.metadata['kind']}, not a {' or '.join(self.kinds)}; load it with "
                            f"workbench.export.{loader}")
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    @property
    def class_names(self) -> list[str] | None:
        """Class names by label (detectors: 0 the background), or None when the export was given none."""
        return self.metadata.get("class_names")

    def run(self, x: Tensor) -> dict[str, Tensor]:
        """The outputs of the file for one input, by name, as CPU tensors."""
        arrays = self.session.run(None, {self.input_name: x.detach().to("cpu", torch.float32).contiguous().numpy()})
        return {name: torch.from_numpy(array) for name, array in zip(self.output_names, arrays)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, kind={self.metadata['kind']!r})"


class OnnxBackbone(OnnxModel):
    """A features-only backbone: `backbone(images)` with normalised images [N, 3, H, W] returns the list of maps."""

    kinds = ("backbone",)

    def __call__(self, images: Tensor) -> list[Tensor]:
        return [output.to(images.device) for output in self.run(images).values()]


class OnnxClassifier(OnnxModel):
    """A classifier: `classifier(images)` with normalised images [N, 3, H, W] returns logits [N, num_classes]."""

    kinds = ("classifier",)

    def __call__(self, images: Tensor) -> Tensor:
        return self.run(images)["logits"].to(images.device)


class OnnxDetector(OnnxModel):
    """A Faster or Mask R-CNN: `detector(images)` returns one dict of "boxes", "labels", "scores" (and "masks") per
    image, as a torchvision detector in eval mode does.

    The images are RGB float tensors [3, H, W] with values in 0-1, of any size; the file resizes and normalises them
    as the PyTorch model did and maps the detections back to the image's pixels. Images run one at a time, as
    `model([image])` does: a PyTorch batch pads its images to one size, which changes the maps near the borders and
    so the detections a little.
    """

    kinds = DETECTOR_KINDS

    def __call__(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        results = []
        for image in images:
            if not image.is_floating_point() or image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"images must be RGB float tensors [3, H, W] in 0-1, got {image.dtype} "
                                 f"{list(image.shape)}")
            results.append({name: output.to(image.device) for name, output in self.run(image).items()})
        return results


LOADERS = {"backbone": OnnxBackbone, "classifier": OnnxClassifier, "faster_rcnn": OnnxDetector,
           "mask_rcnn": OnnxDetector}


def load_onnx(path: str | Path, **kwargs) -> OnnxModel:
    """The runner of an exported ONNX file for its kind: `OnnxBackbone`, `OnnxClassifier` or `OnnxDetector`;
    `kwargs` go to its constructor."""
    runner = OnnxModel(path, **kwargs)
    runner.__class__ = LOADERS[runner.metadata["kind"]]  # the subclasses add no state: one session, not two
    return runner
