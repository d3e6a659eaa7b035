"""The description an exported file carries: JSON under the ONNX metadata key "workbench" (`metadata_props`), or the
extra file "workbench.json" of a TorchScript archive.

Keys: `format_version`, `format` ("onnx" / "torchscript"), `kind` ("backbone", "classifier", "faster_rcnn",
"mask_rcnn"), `architecture`, `normalization` (mean and std in 0-1 units, channel_order, pixel_range: what
a backbone's or classifier's caller applies, what a detector applies itself to RGB 0-1 images), `inputs` and
`outputs` (name, shape with named dynamic axes, description), `call` (how the module is called), `torch`; per kind:
backbones `out_indices`, `channels`, `reductions`; classifiers `num_classes`, `class_names`; detectors
`num_classes`, `class_names` (index = label, 0 the background), `labels_are_category_ids`, `min_size`, `max_size`,
`box_score_thresh`, `box_detections_per_img`; ONNX `opset`. Names unknown at export are null.
"""
import json
import zipfile
from pathlib import Path

import torch

from workbench.errors import MissingFileError, UserError

from .dependencies import require
from .subjects import ExportSubject

METADATA_KEY = "workbench"
TORCHSCRIPT_EXTRA_FILE = "workbench.json"
FORMAT_VERSION = 1
CALLS = {
    "onnx": {
        "backbone": "session.run(None, {'images': float32[N, 3, H, W], normalised}) -> one map per output",
        "classifier": "session.run(None, {'images': float32[N, 3, H, W], normalised}) -> [logits]",
        "detector": "session.run(None, {'image': float32[3, H, W], RGB 0-1}) -> [boxes, labels, scores(, masks)]; "
                    "or workbench.export.OnnxDetector(path)([image, ...])",
    },
    "torchscript": {
        "backbone": "module(images[N, 3, H, W], normalised) -> list of maps",
        "classifier": "module(images[N, 3, H, W], normalised) -> logits[N, num_classes]",
        "detector": "module([image[3, H, W] RGB 0-1, ...]) -> (losses, [{'boxes', 'labels', 'scores'(, 'masks')}])",
    },
}


def interface(subject: ExportSubject) -> tuple[list[dict], list[dict]]:
    """The inputs and outputs of the exported model: name, shape (strings name the dynamic axes), description."""
    if subject.is_detector:
        inputs = [dict(name="image", shape=[3, "height", "width"], description="one RGB image, float32 in 0-1")]
        outputs = [dict(name="boxes", shape=["detections", 4], description="x1, y1, x2, y2 in input pixels"),
                   dict(name="labels", shape=["detections"], description="int64 labels (index of class_names)"),
                   dict(name="scores", shape=["detections"], description="scores, highest first")]
        if subject.kind == "mask_rcnn":
            outputs.append(dict(name="masks", shape=["detections", 1, "height", "width"],
                                description="mask probabilities in the input's size"))
        return inputs, outputs
    inputs = [dict(name="images", shape=["batch", 3, "height", "width"],
                   description="float32 images normalised as `normalization` says")]
    if subject.kind == "classifier":
        return inputs, [dict(name="logits", shape=["batch", subject.description["num_classes"]],
                             description="class scores before softmax")]
    return inputs, [dict(name=f"feature_{index}", shape=["batch", channels, f"height_{index}", f"width_{index}"],
                         description=f"map {index}, stride {reduction}")
                    for index, channels, reduction in zip(subject.description["out_indices"],
                                                          subject.description["channels"],
                                                          subject.description["reductions"])]


def build_metadata(subject: ExportSubject, fmt: str, **extra) -> dict:
    """The JSON-able description of `subject` exported as `fmt` ("onnx" or "torchscript")."""
    inputs, outputs = interface(subject)
    call = CALLS[fmt]["detector" if subject.is_detector else subject.kind]
    return dict(format_version=FORMAT_VERSION, format=fmt, **subject.description, inputs=inputs, outputs=outputs,
                call=call, torch=torch.__version__, **extra)


def write_onnx_metadata(path: str | Path, metadata: dict) -> None:
    """Stores `metadata` as JSON under `METADATA_KEY` in the ONNX file at `path` (rewritten in place)."""
    onnx = require("onnx")
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    onnx.save(model, str(path))


def parse(text: str | None, path: str | Path) -> dict:
    """The metadata JSON `text` read from `path`.

    Raises:
        UserError: there is none: the file was not written by workbench.export.
    """
    if not text:
        raise UserError(f"{path} carries no '{METADATA_KEY}' metadata: it was not exported by tools/export.py")
    return json.loads(text)


def read_torchscript_metadata(path: str | Path) -> dict:
    """The metadata of a TorchScript file, read from its archive without loading the model."""
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist() if name.endswith(f"/extra/{TORCHSCRIPT_EXTRA_FILE}")]
        return parse(archive.read(names[0]).decode() if names else None, path)


def read_onnx_metadata(path: str | Path) -> dict:
    """The metadata of an ONNX file (its weights are not read)."""
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    return parse({prop.key: prop.value for prop in model.metadata_props}.get(METADATA_KEY), path)


def read_metadata(path: str | Path) -> dict:
    """The metadata of a file exported by workbench.export, TorchScript (a zip archive) or ONNX.

    Raises:
        MissingFileError: there is no such file.
        UserError: the file carries no metadata.
    """
    if not Path(path).is_file():
        raise MissingFileError(f"exported model not found: {path}")
    return read_torchscript_metadata(path) if zipfile.is_zipfile(path) else read_onnx_metadata(path)
