"""Whole-detector weights by name, as torchvision's weights enums and detectron2's model zoo: each name states the
file (URL and digest), the detector it fits (kind, backbone tag, neck, classes, options) and the conventions it was
trained with (the backbone tag's input normalisation, FrozenBatchNorm's eps), with the COCO val2017 AP published
beside it.

torchvision's COCO_V1 files have an output per COCO category id (91, `labels_are_category_ids`) and run with
FrozenBatchNorm eps 0 (torchvision's `overwrite_eps(model, 0.0)`); detectron2's have one per category in id order
(81) and its RoIAlignV2 poolers (half-pixel aligned, adaptive sampling).
"""
import difflib
import fnmatch
import os

TORCHVISION_URL = "https://download.pytorch.org/models/"
DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/"
DETECTRON2_OPTIONS = dict(roi_align_aligned=True, roi_sampling_ratio=0)
DETECTRON2_C4_OPTIONS = dict(DETECTRON2_OPTIONS, size_divisible=1, rpn_pre_nms_top_n_test=6000,
                             rpn_post_nms_top_n_test=1000)
TEST_SIZES = dict(min_size=800, max_size=1333)


def _torchvision(kind: str, file: str, box_ap: float, mask_ap: float | None = None) -> dict:
    return dict(kind=kind, backbone="resnet50.tv_in1k", neck="fpn", num_classes=91, labels_are_category_ids=True,
                frozen_bn_eps=0.0, options=dict(TEST_SIZES), url=TORCHVISION_URL + file, md5="", box_ap=box_ap,
                mask_ap=mask_ap, source="torchvision COCO_V1")


def _detectron2(kind: str, path: str, md5: str, box_ap: float, mask_ap: float | None = None) -> dict:
    neck = "c4" if "_C4_" in path else "fpn"
    options = DETECTRON2_C4_OPTIONS if neck == "c4" else DETECTRON2_OPTIONS
    return dict(kind=kind, backbone="resnet50.msra_in1k", neck=neck, num_classes=81, labels_are_category_ids=False,
                frozen_bn_eps=1e-5, options=dict(TEST_SIZES, **options), url=DETECTRON2_URL + path, md5=md5,
                box_ap=box_ap, mask_ap=mask_ap, source="detectron2 model zoo")


DETECTOR_WEIGHTS: dict[str, dict] = {
    "fasterrcnn_resnet50_fpn.tv_coco_v1": _torchvision("faster_rcnn", "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
                                                       37.0),
    "maskrcnn_resnet50_fpn.tv_coco_v1": _torchvision("mask_rcnn", "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", 37.9,
                                                     34.6),
    "faster_rcnn_R_50_FPN_3x.d2_coco": _detectron2(
        "faster_rcnn", "COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl", "280758", 40.2),
    "faster_rcnn_R_50_C4_3x.d2_coco": _detectron2(
        "faster_rcnn", "COCO-Detection/faster_rcnn_R_50_C4_3x/137849393/model_final_f97cb7.pkl", "f97cb7", 38.4),
    "mask_rcnn_R_50_FPN_3x.d2_coco": _detectron2(
        "mask_rcnn", "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl", "f10217",
        41.0, 37.2),
    "mask_rcnn_R_50_C4_3x.d2_coco": _detectron2(
        "mask_rcnn", "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x/137849525/model_final_4ce675.pkl", "4ce675",
        39.8, 34.4),
}


def list_detector_weights(filter: str = "") -> list[str]:
    """The names of the registered detector weights matching the fnmatch pattern `filter` (all when empty)."""
    return sorted(name for name in DETECTOR_WEIGHTS if not filter or fnmatch.fnmatch(name, filter))


def detector_weights_spec(name: str) -> dict:
    """The spec of the weights `name` (see `DETECTOR_WEIGHTS`), with `name` and `file` (the file's own name).

    Raises:
        ValueError: no weights of that name; the message names close matches.
    """
    if name not in DETECTOR_WEIGHTS:
        close = difflib.get_close_matches(name, DETECTOR_WEIGHTS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"registered: {', '.join(list_detector_weights())}"
        raise ValueError(f"no detector weights named {name!r}; {hint}")
    return dict(DETECTOR_WEIGHTS[name], name=name, file=_file_name(name))


def _file_name(name: str) -> str:
    """The name its publisher gave the file of the weights `name`."""
    return DETECTOR_WEIGHTS[name]["url"].rsplit("/", 1)[-1]


def named_weights(weights: str | os.PathLike | None) -> dict | None:
    """The spec that `weights` names: a registered name, or a path to a file of a registered name (the name its
    publisher gave it, as downloaded: `maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`); None for any other file."""
    if weights is None:
        return None
    text = os.fspath(weights)
    if text in DETECTOR_WEIGHTS and not os.path.exists(text):
        return detector_weights_spec(text)
    file_name = os.path.basename(text)
    return next((detector_weights_spec(name) for name in DETECTOR_WEIGHTS if _file_name(name) == file_name), None)
