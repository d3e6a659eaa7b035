"""Small models of every exportable kind and their exports, made once per session (exports take seconds)."""
import pytest
import torch

import backbones
import heads
from workbench.export import export_and_verify, subject_for

SIZE = 64  # backbones and classifiers: 64 px verification images; detectors: 128 px
# score threshold 0: every image has detections; no cut by box_detections_per_img (at most 20 proposals x 2 classes),
# which near-equal scores of random weights would make depend on float rounding
DETECTOR = dict(min_size=128, max_size=128, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20,
                box_detections_per_img=100, box_score_thresh=0.0)
HEADS = {"fpn": dict(fpn_channels=32, representation_size=64, mask_head_channels=16, mask_head_convs=1),
         "c4": dict(mask_head_channels=16)}
CLASS_NAMES = ["circle", "square"]
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def small_model(kind: str, neck: str | None = None, seed: int = 0) -> torch.nn.Module:
    """resnet18 as a features-only backbone, a 5-class classifier, or a 3-class detector (128 px, few proposals)."""
    torch.manual_seed(seed)
    if kind == "backbone":
        return backbones.create_backbone("resnet18", features_only=True)
    if kind == "classifier":
        return backbones.create_backbone("resnet18", num_classes=5)
    options = {k: v for k, v in HEADS[neck].items() if kind == "mask_rcnn" or not k.startswith("mask")}
    return heads.build_detector(kind, backbone="resnet18", num_classes=3, neck=neck, **DETECTOR, **options)


@pytest.fixture(name="small_model", scope="session")
def small_model_fixture():
    """`small_model(kind, neck=None, seed=0)`: a fresh small model (see `small_model`)."""
    return small_model


def small_subject(kind: str, neck: str | None = None):
    model = small_model(kind, neck)
    if kind == "backbone":
        return subject_for(model, image_size=SIZE)
    if kind == "classifier":
        return subject_for(model, image_size=SIZE, class_names=list("abcde"))
    return subject_for(model, class_names=CLASS_NAMES, labels_are_category_ids=True)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """`exported(kind, neck, fmt)`: (subject, ExportResult) of the small model of that kind, exported once."""
    cache = {}
    folder = tmp_path_factory.mktemp("exported")

    def export(kind: str, neck: str | None, fmt: str):
        key = (kind, neck, fmt)
        if key not in cache:
            subject = small_subject(kind, neck)
            path = folder / f"{kind}_{neck}{SUFFIXES[fmt]}"
            cache[key] = subject, export_and_verify(subject, path, fmt)
        return cache[key]
    return export
