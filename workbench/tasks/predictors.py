"""The model `tools/predict.py` runs, from a config and weights, a training checkpoint or an exported file: a detector
or a classifier, with the class names and category ids of its labels and the image transform it needs."""
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from workbench.config.loader import check_keys, load_config, merge, read_yaml
from workbench.config.schemas import SCHEMAS
from workbench.data.classification_transforms import eval_transform
from workbench.data.label_names import classification_labels, detection_labels
from workbench.engine import distributed
from workbench.engine.checkpoints import load_training_state
from workbench.errors import UserError
from workbench.tasks.classification import eval_sizes, normalisation
from workbench.tasks.classification_model import classifier_from_state, classifier_from_weights
from workbench.tasks.detection import build_model, split_paths, use_detector_checkpoint


@dataclass
class Predictor:
    """What predicts, and what its outputs mean.

    Attributes:
        kind: "detector" (called with a list of [3, H, W] RGB float images in 0-1, returns torchvision's detection
            dicts) or "classifier" (called with a [B, 3, H, W] batch as `transform` makes it, returns logits).
        model: the model, in eval mode on `device`.
        class_names: the name of each label (a detector's label 0 is the background).
        label_to_cat_id: a detector's COCO category id of each label that is a category.
        transform: what turns an RGB PIL image into the model's input; None: a [3, H, W] uint8 tensor.
        device: where the model runs.
    """

    kind: str
    model: Callable
    class_names: list[str]
    label_to_cat_id: dict[int, int]
    transform: Callable[[Image.Image], torch.Tensor] | None
    device: torch.device


def config_kind(path: str) -> str:
    """"detection" or "classification": the schema whose keys the config file at `path` uses (detection when both
    fit)."""
    content, errors = read_yaml(path), {}
    for kind, defaults in SCHEMAS.items():
        try:
            check_keys(content, defaults, path)
            return kind
        except UserError as error:
            errors[kind] = error
    raise errors["detection"]


def saved_config(state: object, path: str) -> dict:
    """The config a train_det.py or train_cls.py checkpoint (`state`, read from `path`) was trained with."""
    config = state.get("config") if isinstance(state, dict) else None
    if not isinstance(config, dict) or "model" not in config:
        raise UserError(f"{path} holds no training config (it is not a train_det.py or train_cls.py checkpoint); "
                        "give the config it belongs to with --config")
    return config


def detector(config: dict, weights: str, device: torch.device) -> Predictor:
    """The detector of a detection config with `weights` (a whole-detector checkpoint: ours or torchvision's)."""
    use_detector_checkpoint(config, weights)
    class_names, label_to_cat_id = detection_labels(config["model"], split_paths(config["data"])["val_annotations"])
    model = build_model(config, device).eval()
    return Predictor("detector", model, class_names, label_to_cat_id, None, device)


def classifier(model: torch.nn.Module, config: dict, device: torch.device) -> Predictor:
    """A classifier with the center-crop evaluation transform of its config."""
    transform = eval_transform(*eval_sizes(config["data"], model), *normalisation(config["data"], model))
    return Predictor("classifier", model.to(device).eval(), classification_labels(config), {}, transform, device)


def onnx_detector(path: str) -> Predictor:
    """An exported detector run by onnxruntime; its class names and category ids come from the file's metadata (else
    "class k", and labels as ids)."""
    from workbench.export.onnx_runtime import OnnxDetector
    model = OnnxDetector(path)  # refuses files of other kinds, naming them
    metadata = model.metadata
    num_classes = metadata["num_classes"]
    class_names = metadata.get("class_names") or ["__background__"] + [f"class {k}" for k in range(1, num_classes)]
    category_ids = metadata.get("category_ids") or [None] + list(range(1, num_classes))
    label_to_cat_id = {label: cat_id for label, cat_id in enumerate(category_ids) if cat_id is not None}
    return Predictor("detector", model, class_names, label_to_cat_id, None, torch.device("cpu"))


def load_predictor(weights: str, config_file: str | None = None, overrides: list[str] = (),
                   device: str | None = None) -> Predictor:
    """The detector or classifier of `config_file` (with `overrides`) with `weights` of any supported format, or,
    without a config, of a train_det.py / train_cls.py checkpoint, on `device` (default: the config's
    train.device)."""
    state = None  # a training checkpoint's contents, read once
    if config_file:
        kind = config_kind(config_file)
        config = load_config(SCHEMAS[kind], config_file, overrides)
    else:
        state = load_training_state(weights)
        saved = saved_config(state, weights)
        kind = "detection" if "kind" in saved["model"] else "classification"
        config = load_config(merge(SCHEMAS[kind], saved), None, overrides)
    device = distributed.select_device(device or config["train"]["device"])
    if kind == "detection":
        return detector(config, weights, device)
    if state is None:
        return classifier(classifier_from_weights(config["model"], weights), config, device)
    return classifier(classifier_from_state(state, weights)[0], config, device)
