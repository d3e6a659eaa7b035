"""What gets exported: a backbone, a classifier or a detector, with the facts its exported file carries.

`subject_for(model)` describes a model built in Python; `backbone_subject`, `classifier_checkpoint_subject` and
`detector_subject` build the model that `tools/export.py` names (a features-only backbone, a classifier checkpoint or
weights, a detector config and weights).
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

import backbones
from backbones.old_paths import moved_names
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.data.coco import label_space
from workbench.data.label_names import detection_labels
from workbench.errors import MissingFileError, UserError
from workbench.tasks.classification import normalisation
from workbench.tasks.classification_model import classifier_from_weights, load_classifier
from workbench.tasks.detection import build_model, split_paths, use_detector_checkpoint

KINDS = ("backbone", "classifier", "faster_rcnn", "mask_rcnn")
DETECTOR_KINDS = ("faster_rcnn", "mask_rcnn")
BACKGROUND = "__background__"
NORMALIZATION_KEYS = ("mean", "std", "channel_order", "pixel_range")
CLASS_NAME_FILES = (".json", ".txt")


@dataclass
class ExportSubject:
    """A model to export and the description its file carries.

    Attributes:
        model: the module as built; export works on a copy (`workbench.export.exportable.exportable_copy`).
        kind: "backbone" (features_only: a list of maps), "classifier" (logits), "faster_rcnn" or "mask_rcnn".
        description: JSON-able facts for the file's metadata: architecture, classes (`class_names`, index = label;
            detectors' `labels_are_category_ids`), input normalisation, maps of a backbone, sizes of a detector.
        image_size: side of the verification images: the square that backbones and classifiers get, the short side
            of a detector's random images.
    """

    model: nn.Module
    kind: str
    description: dict = field(default_factory=dict)
    image_size: int = 224

    @property
    def is_detector(self) -> bool:
        return self.kind in DETECTOR_KINDS

    @property
    def normalization(self) -> dict:
        """mean, std (0-1 units), channel_order and pixel_range of the inputs: what a backbone or a
        classifier expects its callers to apply, what a detector applies itself to RGB 0-1 images."""
        return self.description["normalization"]


def kind_of(model: nn.Module) -> str:
    """The kind of `model`: faster_rcnn / mask_rcnn for torchvision-style detectors, backbone for features-only
    backbones (a list of maps), classifier otherwise."""
    if isinstance(model, GeneralizedRCNN):
        return "mask_rcnn" if isinstance(model, MaskRCNN) or model.roi_heads.has_mask() else "faster_rcnn"
    if isinstance(model, (backbones.FeatureExtractor, backbones.PreActFeatures)):
        return "backbone"
    return "classifier"


def _checked_class_names(names: list[str] | None, kind: str, num_classes: int) -> list[str] | None:
    """`names` as labels index them; a detector's list may leave out the background, which is then put first."""
    if names is None:
        return None
    names = [str(name) for name in names]
    if kind in DETECTOR_KINDS and len(names) == num_classes - 1 and BACKGROUND not in names:
        names = [BACKGROUND] + names
    if len(names) != num_classes:
        extra = f" (or {num_classes - 1} without the background)" if kind in DETECTOR_KINDS else ""
        raise UserError(f"{len(names)} class names given, but the {kind} has {num_classes} classes; give "
                        f"{num_classes}{extra}, index = label")
    return names


def subject_for(model: nn.Module, kind: str | None = None, *, class_names: list[str] | None = None,
                labels_are_category_ids: bool = False, normalization: dict | None = None,
                image_size: int | None = None, **extras) -> ExportSubject:
    """The export subject of a model built in Python.

    Args:
        model: a features-only backbone (`create_backbone(name, features_only=True)`), a classifier, or a Faster /
            Mask R-CNN (`heads.build_detector`).
        kind: one of `KINDS`; None infers it from the model (`kind_of`).
        class_names: names by label (classifiers: index = class; detectors: index = label, 0 the background, which
            may be left out).
        labels_are_category_ids: a detector's label k is COCO category id k (the config key of the same name).
        normalization: the input normalisation of a backbone or classifier (mean, std, channel_order, pixel_range);
            default: the model's `pretrained_cfg`.
        image_size: side of the verification images; default: the pretrained config's input size (backbones,
            classifiers) or the detector's `min_size`.
        **extras: more JSON-able facts for the metadata.

    Raises:
        UserError: `kind` is unknown, or `class_names` do not count the model's classes.
    """
    kind = kind or kind_of(model)
    if kind not in KINDS:
        raise UserError(f"kind={kind!r} cannot be exported; choose one of {', '.join(KINDS)}")
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    normalization = dict(normalization or {key: cfg[key] for key in NORMALIZATION_KEYS if key in cfg})
    normalization = {key: list(value) if isinstance(value, tuple) else value for key, value in normalization.items()}
    description = dict(kind=kind, architecture=cfg.get("architecture"), normalization=normalization)
    if kind == "backbone":
        info = model.feature_info
        description.update(out_indices=list(info.out_indices), channels=info.channels(),
                           reductions=info.reduction())
        size = image_size or cfg.get("input_size", (3, 224, 224))[-1]
    elif kind == "classifier":
        description.update(num_classes=model.num_classes,
                           class_names=_checked_class_names(class_names, kind, model.num_classes))
        size = image_size or cfg.get("input_size", (3, 224, 224))[-1]
    else:
        num_classes = getattr(model, "num_classes", None) or model.roi_heads.box_predictor.cls_score.out_features
        transform = model.transform
        description.update(num_classes=num_classes, class_names=_checked_class_names(class_names, kind, num_classes),
                           labels_are_category_ids=bool(labels_are_category_ids),
                           min_size=int(transform.min_size[-1]), max_size=int(transform.max_size),
                           box_score_thresh=float(model.roi_heads.score_thresh),
                           box_detections_per_img=int(model.roi_heads.detections_per_img))
        size = image_size or int(transform.min_size[-1])
    description.update(extras)
    return ExportSubject(model=model, kind=kind, description=description, image_size=int(size))


def read_class_names(values: list[str] | None, labels_are_category_ids: bool = False) -> list[str] | None:
    """Class names from a command line: the names themselves, or one file: a COCO annotation JSON (its categories
    as a detector labels them, the background first), a JSON list, or a text file with one name per line."""
    if not values:
        return None
    path = Path(values[0])
    if len(values) != 1 or not (path.is_file() or path.suffix in CLASS_NAME_FILES):
        return list(values)
    if not path.is_file():
        raise MissingFileError(f"class names file not found: {path}")
    if path.suffix == ".json":
        content = json.loads(path.read_text())
        if isinstance(content, dict) and "categories" in content:
            categories = {c["id"]: c["name"] for c in content["categories"]}
            return label_space(categories, labels_are_category_ids, path)[1]
        if isinstance(content, list) and all(isinstance(name, str) for name in content):
            return content
        raise UserError(f"{path} is neither COCO annotations (with 'categories') nor a JSON list of names")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def detector_subject(config_path: str, weights: str, overrides: list[str] | None = None,
                     class_names: list[str] | None = None) -> ExportSubject:
    """The detector of a train_det.py config with whole-detector `weights`, as tools/eval_det.py builds it (and, as
    there, refused when the checkpoint has another number of class outputs).

    Class names and the COCO category id of each label (`category_ids`, null for the background and labels that
    are no category) default to those of `workbench.data.label_names.detection_labels`: the config's validation
    annotations when that file exists, else COCO's for COCO configs; given class names take their labels as ids.
    """
    config = load_config(DETECTION_DEFAULTS, config_path, overrides)
    use_detector_checkpoint(config, weights)
    try:
        model = build_model(config, torch.device("cpu"))
    except ValueError as error:  # an unknown option or backbone of the config
        raise UserError(f"{config_path}: {error}") from error
    by_id = config["model"]["labels_are_category_ids"]
    if class_names:
        names = read_class_names(class_names, by_id)
        category_ids = [None] + list(range(1, len(names)))
    else:
        names, label_to_cat_id = detection_labels(config["model"], split_paths(config["data"])["val_annotations"])
        category_ids = [label_to_cat_id.get(label) for label in range(len(names))]
    return subject_for(model, config["model"]["kind"], class_names=names, labels_are_category_ids=by_id,
                       neck=config["model"]["neck"], category_ids=category_ids)


def classifier_checkpoint_subject(path: str, class_names: list[str] | None = None) -> ExportSubject:
    """The classifier of a train_cls.py checkpoint; its inputs are normalised as its training config says (see
    `workbench.tasks.classification.normalisation`)."""
    model, config = load_classifier(path)
    data = config.get("data", {})
    normalization = None
    if data.get("mean") is not None and data.get("std") is not None:
        mean, std, channel_order = normalisation(data, model)
        normalization = dict(mean=list(mean), std=list(std), channel_order=channel_order, pixel_range=1.0)
    return subject_for(model, "classifier", class_names=read_class_names(class_names), normalization=normalization)


def backbone_subject(name: str, weights: str | None = None, *, features_only: bool = False,
                     out_indices: list[int] | None = None, num_classes: int | None = None,
                     class_names: list[str] | None = None) -> ExportSubject:
    """A registered backbone with weights of any format `backbones.load_weights` reads (or random ones): its
    features-only view, or the classifier with `num_classes` outputs (default: the name's)."""
    try:
        if features_only:
            model = backbones.create_backbone(name, pretrained=weights or False, features_only=True,
                                              out_indices=out_indices)
            return subject_for(model, "backbone")
        if out_indices is not None:
            raise UserError("--out-indices selects feature maps and needs --features-only")
        num_classes = num_classes or backbones.create_backbone(name).num_classes
        spec = dict(backbone=name, num_classes=num_classes, backbone_weights=None, options={})
        model = classifier_from_weights(spec, weights) if weights else backbones.create_backbone(
            name, num_classes=num_classes)
    except ValueError as error:
        raise UserError(str(error)) from error
    return subject_for(model, "classifier", class_names=read_class_names(class_names))


# The command line's entry moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"subject_from_args": ("workbench.cli.export", "subject_of")})
