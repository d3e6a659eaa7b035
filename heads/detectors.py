"""Faster R-CNN and Mask R-CNN on any registered backbone, assembled from torchvision's detection parts.

The ResNet is built whole and given its weights before it is cut into the detector's backbone (and, for C4, its
res5 box head). Input normalisation comes from the backbone's pretrained config (see `heads.transform`).
"""
import os

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN

from backbones import FeatureExtractor, create_backbone, read_weights
from backbones.hub import download_weights
from backbones.norm import set_frozen_batchnorm_eps
from backbones.packed_conv import pack_convolutions

from .necks import c4, fpn
from .box_loss import TORCHVISION_BETA, set_box_loss_betas
from .weights.catalog import list_detector_weights, named_weights
from .head_init import init_heads
from .transform import RCNNTransform
from .weights.loading import load_detector_weights

# Each neck module gives `build_parts` and the names of the options it takes for boxes and for masks.
NECKS = {"fpn": fpn, "c4": c4}
# torchvision's FasterRCNN / MaskRCNN keyword arguments, passed through unchanged.
DETECTOR_OPTIONS = (
    "rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_train", "rpn_post_nms_top_n_test",
    "rpn_nms_thresh", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh", "rpn_batch_size_per_image", "rpn_positive_fraction",
    "rpn_score_thresh", "box_score_thresh", "box_nms_thresh", "box_detections_per_img", "box_fg_iou_thresh",
    "box_bg_iou_thresh", "box_batch_size_per_image", "box_positive_fraction", "bbox_reg_weights",
)
TRANSFORM_DEFAULTS = dict(min_size=800, max_size=1333, size_divisible=32, fixed_size=None,
                          skip_resize_in_training=False)
# How the heads learn: the smooth-L1 betas of the RPN's and the RoI head's box losses (0: L1, detectron2's) and
# the heads' initial weights (see `heads.box_loss`, `heads.head_init`); torchvision's by default.
LEARNING_DEFAULTS = dict(rpn_smooth_l1_beta=TORCHVISION_BETA, box_smooth_l1_beta=TORCHVISION_BETA,
                         head_init="torchvision")
BACKBONE_OPTIONS = ("norm", "frozen_stages")
SPEED_OPTIONS = ("fast_inference",)
NUM_STAGES = 4


def valid_options(kind: str, neck: str) -> tuple[str, ...]:
    """The names of the options that a `kind` detector with `neck` takes (see `faster_rcnn`).

    Raises:
        ValueError: `neck` is not one of `NECKS`.
    """
    if neck not in NECKS:
        raise ValueError(f"neck={neck!r} is not supported; choose one of {', '.join(NECKS)}")
    head_options = NECKS[neck].BOX_OPTIONS + (NECKS[neck].MASK_OPTIONS if kind == "mask_rcnn" else ())
    return (BACKBONE_OPTIONS + SPEED_OPTIONS + tuple(TRANSFORM_DEFAULTS) + tuple(LEARNING_DEFAULTS) + head_options
            + DETECTOR_OPTIONS)


def _check_options(kind: str, neck: str, options: dict) -> None:
    valid = valid_options(kind, neck)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {kind} with neck={neck!r}; "
                         f"valid options: {', '.join(valid)}")


def _detector_resnet(backbone: str, backbone_weights: bool | str | os.PathLike | None, pretrained: bool,
                     options: dict, conventions: dict) -> nn.Module:
    """The whole ResNet with its weights, built as `conventions` (a detector checkpoint's) say; frozen BN and a frozen
    stem + layer1 by default over pretrained weights."""
    norm = options.pop("norm", "frozen_bn" if pretrained else "bn")
    frozen_stages = options.pop("frozen_stages", 1 if pretrained else -1)
    resnet = create_backbone(backbone, pretrained=backbone_weights or False, norm=norm, frozen_stages=frozen_stages,
                             pretrained_cfg_overlay=conventions)
    stages = len(resnet.feature_info) - 1
    if stages != NUM_STAGES:
        raise ValueError(f"backbone {backbone!r} has {stages} stages; detectors need the {NUM_STAGES} stages of an "
                         "ImageNet ResNet")
    return resnet


def _named(kind: str, backbone: str, num_classes: int | None, spec: dict, weights: str | os.PathLike,
           weights_file: str | os.PathLike | None, options: dict) -> tuple[str, int, str, str, dict]:
    """(backbone, num_classes, neck, weights file, options) of the detector that the named weights `spec` fit."""
    if spec["kind"] != kind:
        raise ValueError(f"{spec['name']} are {spec['kind']} weights; build them with heads.{spec['kind']} (or "
                         f"build_detector(kind={spec['kind']!r}))")
    if backbone.partition(".")[0] != spec["backbone"].partition(".")[0]:
        raise ValueError(f"{spec['name']} are weights of a {spec['backbone']} detector, not of {backbone}")
    if weights_file is None and os.path.exists(os.fspath(weights)):
        weights_file = weights
    if weights_file is None:
        local_file = f"heads.{kind}(weights={spec['name']!r}, weights_file='/path/to/{{filename}}')"
        weights_file = download_weights(spec["name"], spec, local_file)
    return (spec["backbone"], spec["num_classes"] if num_classes is None else num_classes, spec["neck"],
            os.fspath(weights_file), {**spec["options"], **options})


def _build(kind: str, backbone: str, num_classes: int | None, neck: str,
           backbone_weights: bool | str | os.PathLike | None, weights: str | os.PathLike | None,
           weights_file: str | os.PathLike | None, options: dict) -> FasterRCNN:
    spec = named_weights(weights)
    if spec is not None:
        backbone, num_classes, neck, weights, options = _named(kind, backbone, num_classes, spec, weights,
                                                               weights_file, options)
    elif weights_file is not None:
        raise ValueError(f"weights_file={os.fspath(weights_file)!r} is a local copy of named weights; give their name "
                         f"as weights= ({', '.join(list_detector_weights())})")
    _check_options(kind, neck, options)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must count the background too: 2 or more "
                         "(e.g. 81 for the 80 COCO categories)")
    state_dict, conventions = read_weights(weights) if weights is not None else (None, {})
    resnet = _detector_resnet(backbone, backbone_weights, bool(backbone_weights) or weights is not None, options,
                              conventions)
    transform_options = {k: options.pop(k, default) for k, default in TRANSFORM_DEFAULTS.items()}
    learning = {k: options.pop(k, default) for k, default in LEARNING_DEFAULTS.items()}
    head_options = {k: options.pop(k) for k in NECKS[neck].BOX_OPTIONS + NECKS[neck].MASK_OPTIONS if k in options}
    parts = NECKS[neck].build_parts(resnet, num_classes=num_classes, with_masks=kind == "mask_rcnn", **head_options)
    detector_class = MaskRCNN if kind == "mask_rcnn" else FasterRCNN
    model = detector_class(num_classes=None, **parts, **options)
    model.transform = RCNNTransform(pretrained_cfg=resnet.pretrained_cfg, **transform_options)
    set_box_loss_betas(model, learning["rpn_smooth_l1_beta"], learning["box_smooth_l1_beta"])
    init_heads(model, learning["head_init"])
    model.num_classes = num_classes
    model.pretrained_cfg = resnet.pretrained_cfg
    set_fast_inference(model, options.pop("fast_inference", True))
    if spec is not None:
        set_frozen_batchnorm_eps(model, spec["frozen_bn_eps"])
    if weights is not None:
        load_detector_weights(model, weights, state_dict)
    return model


def set_fast_inference(model: nn.Module, enable: bool = True) -> nn.Module:
    """Turns the CPU inference speed-ups of a detector on (the default) or off, in place.

    On: the backbone folds running-statistics BatchNorm into its convolutions (`FeatureExtractor.set_fused`) and
    every other convolution runs channels-last with a packed oneDNN weight (`backbones.packed_conv`); on a torch
    without those oneDNN operators (`backbones.capabilities`) the folded weights run through F.conv2d and the other
    convolutions stay plain. Boxes and scores then differ from the plain path by float rounding (about 1e-5
    relative); off gives torchvision's detections to the last bit. In training only frozen stages change: folded,
    they agree to float rounding.
    """
    for module in model.modules():
        if isinstance(module, FeatureExtractor):
            module.set_fused(enable)
    return pack_convolutions(model, enable, skip=(FeatureExtractor,))


def faster_rcnn(
    backbone: str = "resnet50", *, num_classes: int | None = None, neck: str = "fpn",
    backbone_weights: bool | str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
    weights_file: str | os.PathLike | None = None, **kwargs,
) -> FasterRCNN:
    """Faster R-CNN (Ren et al. 2015) on a registered backbone, as a torchvision FasterRCNN.

    `model.train(); model(images, targets)` returns the loss dict; `model.eval(); model(images)` returns one dict
    of "boxes" (x1, y1, x2, y2 in input pixels), "labels" and "scores" per image. Images are RGB float tensors in
    0-1 of any size; the model resizes them and normalises them as its backbone's weights expect.

    Args:
        backbone: a registered name, optionally with a pretrained tag (`resnet50.msra_in1k`); the tag's config
            sets the input normalisation.
        num_classes: number of classes INCLUDING the background (torchvision's convention): 81 for COCO's 80;
            named `weights` set it (another number keeps their other layers and drops their class predictors).
        neck: "fpn" (P2-P6 with RoIAlign 7x7 on P2-P5) or "c4" (the paper's: RPN and 14x14 RoIAlign on C4, res5 as
            the box head).
        backbone_weights: None to train from scratch; True for the tag's pretrained weights (downloaded once);
            or the path of a backbone checkpoint in any format `backbones.load_weights` reads.
        weights: a whole detector's weights: a name of `heads.list_detector_weights()`
            (`"maskrcnn_resnet50_fpn.tv_coco_v1"`: downloaded once and verified; the name sets the backbone tag,
            neck, number of classes, options and FrozenBatchNorm eps its authors ran), or the path of a checkpoint:
            ours (a dict with "model"), torchvision's `fasterrcnn_resnet50_fpn` file, or a detectron2 model-zoo
            Faster/Mask R-CNN (FPN or C4; see `heads.load_detector_weights` and `heads.weights.detectron2`). A file
            under its publisher's name (`maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`) is taken as those named weights.
        weights_file: a local copy of the named `weights` (no download).
        **kwargs: options:
            norm, frozen_stages: backbone normalisation and frozen stages; by default "frozen_bn" and 1 (stem and
                layer1, torchvision's trainable_layers=3) over pretrained weights (`backbone_weights` or
                `weights`), else trainable "bn" and -1.
            min_size (800), max_size (1333), size_divisible (32), fixed_size (None): torchvision's resizing.
            skip_resize_in_training (False): train on images as the data pipeline sized them; evaluation still
                resizes and maps the outputs back to the original size.
            fast_inference (True): CPU inference speed-ups, see `set_fast_inference`.
            rpn_smooth_l1_beta, box_smooth_l1_beta (1/9, torchvision's; 0: L1, detectron2's): the box losses' betas,
                see `heads.box_loss`.
            head_init ("torchvision"; "detectron2": normal class / box / mask predictors of std 0.01 / 0.001 /
                0.001 and Kaiming-uniform box-head fcs): see `heads.head_init`.
            anchor_sizes ((32, 64, 128, 256, 512): one per level for FPN, all on C4), aspect_ratios ((0.5, 1, 2)).
            roi_align_aligned (False; True: detectron2's ROIAlignV2, the half-pixel offset), roi_sampling_ratio
                (2; 0: adaptive, detectron2's default): box and mask RoIAlign.
            FPN only: fpn_channels (256), representation_size (1024), box_head ("2fc": TwoMLPHead; "2conv1fc" /
                "4conv1fc": two / four 3x3 GroupNorm convs fpn_channels wide, then one fc).
            torchvision's FasterRCNN options: rpn_pre_nms_top_n_train/test, rpn_post_nms_top_n_train/test,
                rpn_batch_size_per_image, box_batch_size_per_image, box_detections_per_img, box_score_thresh,
                box_nms_thresh, and the other rpn_* / box_* thresholds, bbox_reg_weights.

    Returns:
        A torchvision FasterRCNN with `num_classes` and `pretrained_cfg` (the backbone's) attributes.

    Raises:
        ValueError: an unknown backbone, neck, box head or option; the message names it and lists the valid ones.
        CheckpointMismatchError: `weights` or `backbone_weights` do not fit the model.
    """
    return _build("faster_rcnn", backbone, num_classes, neck, backbone_weights, weights, weights_file, kwargs)


def mask_rcnn(
    backbone: str = "resnet50", *, num_classes: int | None = None, neck: str = "fpn",
    backbone_weights: bool | str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
    weights_file: str | os.PathLike | None = None, **kwargs,
) -> MaskRCNN:
    """Mask R-CNN (He et al. 2017) on a registered backbone, as a torchvision MaskRCNN.

    Takes the arguments and options of `faster_rcnn`, plus the mask head's: `mask_head_channels` (256; FPN: width
    of the convs and the deconv; C4: the deconv after res5) and, FPN only, `mask_head_convs` (4). Evaluation adds
    "masks" (N x 1 x H x W probabilities in the input's size) to each image's outputs. `weights` may be
    torchvision's `maskrcnn_resnet50_fpn` file as it is.

    Returns:
        A torchvision MaskRCNN with `num_classes` and `pretrained_cfg` (the backbone's) attributes.
    """
    return _build("mask_rcnn", backbone, num_classes, neck, backbone_weights, weights, weights_file, kwargs)


def build_detector(kind: str, **kwargs) -> FasterRCNN:
    """`faster_rcnn(**kwargs)` or `mask_rcnn(**kwargs)` as `kind` ("faster_rcnn" or "mask_rcnn") says, for configs."""
    builders = {"faster_rcnn": faster_rcnn, "mask_rcnn": mask_rcnn}
    if kind not in builders:
        raise ValueError(f"kind={kind!r} is not supported; choose one of {', '.join(builders)}")
    return builders[kind](**kwargs)
