"""detectron2 model-zoo detectors (Faster/Mask R-CNN, FPN and C4) in our detectors' names.

detectron2's model zoo ships a trained detector as a pickle `{"model": {name: numpy array}, "__author__": ...}`
(`detectron2/checkpoint/detection_checkpoint.py: _load_file`); its own training checkpoints are `.pth` files with
the same names under "model". `heads.load_detector_weights` recognises the layout by its keys
(`proposal_generator.`, `backbone.bottom_up.`, `backbone.stem.`, `roi_heads.res5.`) and renames it here (file
paths below are in facebookresearch/detectron2, under detectron2/modeling/ unless they say otherwise):

- `backbone.bottom_up.stem`, `.res2`..`.res5` (FPN; backbone/fpn.py: FPN.bottom_up, backbone/resnet.py), C4's
  `backbone.stem`, `.res2`..`.res4` and `roi_heads.res5` (roi_heads/roi_heads.py: Res5ROIHeads): renamed by
  `backbones.weights.formats.detectron2`'s renamer to `backbone.body.conv1`, `bn1`, `layer1`..`layer4`; C4's res5 to
  `roi_heads.box_head.res5.` (and, for Mask R-CNN, `roi_heads.mask_head.`: the same module).
- `backbone.fpn_lateral{2..5}`, `backbone.fpn_output{2..5}` (backbone/fpn.py: FPN, the number being log2 of the
  stride): `backbone.fpn.inner_blocks.{0..3}.0`, `backbone.fpn.layer_blocks.{0..3}.0`.
- `proposal_generator.rpn_head.conv`, `.objectness_logits`, `.anchor_deltas` (proposal_generator/rpn.py:
  StandardRPNHead): `rpn.head.conv.0.0`, `rpn.head.cls_logits`, `rpn.head.bbox_pred`.
- `roi_heads.box_head.fc1`, `.fc2` (roi_heads/box_head.py: FastRCNNConvFCHead with NUM_FC 2, NUM_CONV 0):
  `roi_heads.box_head.fc6`, `.fc7`.
- `roi_heads.box_predictor.cls_score`, `.bbox_pred` (roi_heads/fast_rcnn.py: FastRCNNOutputLayers): the same names.
- `roi_heads.mask_head.mask_fcn{1..4}`, `.deconv`, `.predictor` (roi_heads/mask_head.py: MaskRCNNConvUpsampleHead;
  C4 has no mask_fcn, ROI_MASK_HEAD.NUM_CONV 0): `roi_heads.mask_head.{0..3}.0`,
  `roi_heads.mask_predictor.conv5_mask`, `roi_heads.mask_predictor.mask_fcn_logits`.

Tensors that change on the way (all exact: the detector computes what detectron2's heads compute):

- `cls_score` has num_classes + 1 rows with the background LAST (fast_rcnn.py: "The last column is for background
  class"); ours has it first: the last row moves to the front.
- `bbox_pred` has 4 rows per foreground class (fast_rcnn.py: `num_bbox_reg_classes * box_dim`, no background), and
  the mask `predictor` one channel per foreground class (mask_head.py); ours have the background's too: zero rows
  (channels) go in front. Class-agnostic heads (CLS_AGNOSTIC_BBOX_REG, CLS_AGNOSTIC_MASK: 4 rows, 1 channel) are
  repeated for every class, which is what torchvision's per-class post-processing then reads.
- The RPN's anchors at one location: detectron2 orders them size by size (anchor_generator.py:
  `generate_cell_anchors` loops over sizes, then aspect ratios), torchvision ratio by ratio
  (torchvision/models/detection/anchor_utils.py: `generate_anchors`). With one size per level (FPN) that is the
  same order; C4's 5 sizes x 3 ratios on one map (detectron2/config/defaults.py: ANCHOR_GENERATOR.SIZES
  [[32, 64, 128, 256, 512]]) have `objectness_logits` and `anchor_deltas` (4 rows per anchor) reordered. The
  detector's anchor sizes and ratios must be the file's (the defaults are).
- `pixel_mean` / `pixel_std` (buffers of GeneralizedRCNN, meta_arch/rcnn.py, now registered non-persistent, so only
  files of older versions may hold them) and the legacy `proposal_generator.anchor_generator.cell_anchors.*` are
  not weights: the first are compared with the detector's input normalisation (a warning when they differ), the
  second ignored, as detection_checkpoint.py does.

Any other key (cascade heads, keypoint heads, PointRend, RetinaNet, Panoptic FPN, deformable or GroupNorm layers, conv
box heads, RPN heads of several convs) makes loading fail with a CheckpointMismatchError that names the file, says it
is a detectron2 detector and lists the unknown keys by kind, the missing ones and the shapes that differ.

What the keys do not show (configs/Base-RCNN-FPN.yaml, configs/Base-RCNN-C4.yaml, detectron2/config/defaults.py):

- Reproduced by our options:
  - RoIAlignV2 (POOLER_TYPE, modeling/poolers.py: ROIAlign(..., aligned=True), the half-pixel offset of
    detectron2/layers/roi_align.py): `roi_align_aligned=True`. torchvision's MultiScaleRoIAlign uses aligned=False.
  - POOLER_SAMPLING_RATIO 0 (adaptive, ceil(RoI size / bins) samples per bin): `roi_sampling_ratio=0` (ours is 2,
    torchvision's detectors').
  - STRIDE_IN_1X1=True (the stride on the first 1x1 of a bottleneck) is our `style="caffe"`, and PIXEL_MEAN
    (103.530, 116.280, 123.675) with PIXEL_STD 1 on BGR 0-255 images (INPUT.FORMAT "BGR") our BGR 0-255
    normalisation: both come with the backbone tags `resnet50.msra_in1k` / `resnet101.msra_in1k` (R-50/R-101
    detectors), and `resnext101_32x8d.fair_in1k` (X-101-32x8d: STRIDE_IN_1X1=False, PIXEL_STD 57.375, 57.120,
    58.395). Build the detector on that tag; `backbone_weights` can stay None. A warning says when the detector's
    normalisation is not BGR.
  - C4 pads images only to the batch's largest (a ResNet's size_divisibility is 0, backbone/backbone.py):
    `size_divisible=1`; FPN pads to 32, as ours does by default.
  - RPN: PRE_NMS_TOPK_TEST 1000 per level (FPN; C4 6000) and POST_NMS_TOPK_TEST 1000 per image:
    `rpn_pre_nms_top_n_test`, `rpn_post_nms_top_n_test` (per level and per image in torchvision too); training
    POST_NMS_TOPK_TRAIN 1000 (FPN): `rpn_post_nms_top_n_train=1000`. Box regression weights (10, 10, 5, 5) and
    (1, 1, 1, 1), SCORE_THRESH_TEST 0.05, NMS_THRESH_TEST 0.5, 100 detections, 800/1333 resizing: torchvision's
    defaults already.
- Not reproduced (outputs differ slightly):
  - torchvision rounds its cell anchors to whole pixels (`base_anchors.round()`), detectron2 does not: the
    proposals move by up to half a pixel, before box regression.
  - Level assignment of RoIs: `floor(4 + log2(sqrt(area) / 224) + eps)` with eps 1e-6 (torchvision's LevelMapper)
    against 1e-8 (poolers.py: assign_boxes_to_levels): only boxes within a hair of a level boundary differ.
  - Resizing: detectron2 resizes the uint8 image (detectron2/data/transforms/: ResizeShortestEdge, PIL bilinear),
    torchvision the float tensor (bilinear interpolate).
  - Mask pasting: detectron2 pastes with grid_sample and thresholds at 0.5 (detectron2/layers/mask_ops.py);
    torchvision pastes 1-pixel-expanded masks with interpolate and returns probabilities.
  - Post-processing: torchvision drops boxes under 0.01 pixel after clipping, detectron2 empty ones after scaling
    to the output size (postprocessing.py: detector_postprocess); the RPN drops proposals under 1e-3 pixel
    (torchvision) against empty ones (PROPOSAL_GENERATOR.MIN_SIZE 0).
  - Training only: C4 Mask R-CNN reusing the box branch's res5 features for masks. (detectron2's L1 box losses
    and head init are options, `rpn_smooth_l1_beta=0`, `box_smooth_l1_beta=0`, `head_init="detectron2"`, which
    its recipes' configs set; see the README's Recipes.)
"""
import logging
import re
from collections.abc import Mapping

import torch
from torch import nn

from backbones import CheckpointMismatchError
from backbones.weights.formats.detectron2 import rename_detectron2
from backbones.weights.loading import mismatch_message, resnet_layout, tensor_mismatches

from .state_names import CLASS_LAYERS, CLASS_SCORES, renamed_mask_conv

logger = logging.getLogger(__name__)

# Keys only a detectron2 detector has: the RPN, the ResNet of an FPN (`bottom_up`) or C4 backbone, C4's res5 head.
DETECTRON2_PREFIXES = ("proposal_generator.", "backbone.bottom_up.", "backbone.stem.", "roi_heads.res5.")
# The modules whose `weight` and `bias` map one to one (rpn.py, box_head.py, fast_rcnn.py, mask_head.py).
HEAD_MODULES = {
    "proposal_generator.rpn_head.conv": "rpn.head.conv.0.0",
    "proposal_generator.rpn_head.objectness_logits": "rpn.head.cls_logits",
    "proposal_generator.rpn_head.anchor_deltas": "rpn.head.bbox_pred",
    "roi_heads.box_head.fc1": "roi_heads.box_head.fc6",
    "roi_heads.box_head.fc2": "roi_heads.box_head.fc7",
    "roi_heads.box_predictor.cls_score": "roi_heads.box_predictor.cls_score",
    "roi_heads.box_predictor.bbox_pred": "roi_heads.box_predictor.bbox_pred",
    "roi_heads.mask_head.deconv": "roi_heads.mask_predictor.conv5_mask",
    "roi_heads.mask_head.predictor": "roi_heads.mask_predictor.mask_fcn_logits",
}
HEAD_KEY = re.compile(rf"({'|'.join(map(re.escape, HEAD_MODULES))})\.(weight|bias)")
# backbone/fpn.py names a lateral and an output conv per stage, `fpn_lateral{stage}`, stage = log2(stride): 2..5.
FPN_KEY = re.compile(r"backbone\.fpn_(lateral|output)([2-5])\.(weight|bias)")
FPN_BLOCKS = {"lateral": "inner_blocks", "output": "layer_blocks"}
FPN_FIRST_STAGE = 2
RESNET_PREFIXES = ("backbone.bottom_up.", "backbone.stem.", "backbone.res", "roi_heads.res5.")
# What `rename_detectron2` returns for a ResNet tensor (torchvision names); anything else it left as it was.
RESNET_KEY = re.compile(r"(conv1|bn1)\.\w+|layer\d\.\d+\.(conv\d|bn\d|downsample\.[01])\.\w+")
NORMALISATION_KEYS = ("pixel_mean", "pixel_std")
IGNORED_KEY = re.compile(r"proposal_generator\.anchor_generator\.cell_anchors\.\d+")
# What a key we do not convert belongs to, for the error message (the first pattern that matches names it).
UNKNOWN_KINDS = (
    (re.compile(r"roi_heads\.(box_head|box_predictor)\.\d+\."), "cascade box heads (Cascade R-CNN)"),
    (re.compile(r"roi_heads\.keypoint_head\."), "a keypoint head (Keypoint R-CNN)"),
    (re.compile(r"roi_heads\.(mask_head\.(point_head|coarse_head)|mask_point_head|mask_coarse_head)\."),
     "PointRend mask heads"),
    (re.compile(r"head\.|backbone\.top_block\.p[67]\."), "RetinaNet's head and P6/P7"),
    (re.compile(r"sem_seg_head\."), "a semantic segmentation head (Panoptic FPN)"),
    (re.compile(r".*_offset\."), "deformable convolutions"),
    (re.compile(r".*\.norm\.(weight|bias)$"), "GroupNorm layers (norms without running statistics)"),
    (re.compile(r"roi_heads\.box_head\.conv\d+\."), "a conv box head (ROI_BOX_HEAD.NUM_CONV > 0)"),
    (re.compile(r"proposal_generator\.rpn_head\.conv\.conv\d+\."), "an RPN head of several convs (RPN.CONV_DIMS)"),
)
MODEL_ZOO_TAGS = "resnet50.msra_in1k, resnet101.msra_in1k (R-50, R-101) or resnext101_32x8d.fair_in1k (X-101-32x8d)"


def is_detectron2_detector(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether `state_dict` is a detectron2 detector's (its RPN, or a ResNet under detectron2's detector names)."""
    return any(key.startswith(DETECTRON2_PREFIXES) for key in state_dict)


def detectron2_anchor_order(num_sizes: int, num_ratios: int) -> list[int]:
    """For each of our anchors at a location (ratio by ratio, torchvision's order), the index of the same anchor in
    detectron2's order (size by size): our anchor r * num_sizes + s is detectron2's s * num_ratios + r."""
    return [size * num_ratios + ratio for ratio in range(num_ratios) for size in range(num_sizes)]


def convert_detectron2_detector(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module, origin: str = "the checkpoint"
) -> dict[str, torch.Tensor]:
    """Renames a detectron2 Faster/Mask R-CNN (FPN or C4) state dict to `model`'s names, and checks that it fits.

    Apart from the class-dependent predictor layers (`cls_score`, `bbox_pred`, `mask_fcn_logits`), whose shapes
    `load_detector_weights` compares (another number of classes drops them), every tensor must find its place in
    `model` with its shape, and every tensor of `model` must be given.

    Args:
        state_dict: the file's tensors, as `backbones.read_checkpoint` returns them.
        model: the detector (a torchvision GeneralizedRCNN built by `heads`); read, not changed.
        origin: the file, for messages.

    Returns:
        The state dict in `model`'s names.

    Raises:
        CheckpointMismatchError: keys that no conversion knows (the message says of what kind: cascade, keypoint,
            PointRend, ...), or that `model` lacks, keys of `model` the file lacks, or tensors of another shape; the
            message names the file as a detectron2 detector, gives the file's names and both shapes.
    """
    expected = model.state_dict()
    num_sizes, num_ratios = _anchor_layout(model)
    converted, sources, unknown, resnet = {}, {}, [], {}
    norms_with_statistics = {k.removesuffix("running_mean") for k in state_dict if k.endswith(".norm.running_mean")}
    is_c4 = any(k.startswith("roi_heads.res5.") for k in state_dict)
    for key, value in state_dict.items():
        if IGNORED_KEY.fullmatch(key) or key in NORMALISATION_KEYS:
            continue
        targets = _targets(key, value, is_c4, expected, norms_with_statistics, resnet)
        if not targets:
            unknown.append(key)
        for target in targets:
            converted[target], sources[target] = value, key
    _convert_classes(converted)
    _reorder_anchors(converted, num_sizes, num_ratios)
    _check(converted, sources, unknown, expected, origin, is_c4, resnet)
    _check_normalisation(state_dict, model, origin)
    return converted


def _targets(key: str, value: torch.Tensor, is_c4: bool, expected: Mapping[str, torch.Tensor],
             norms_with_statistics: set[str], resnet: dict[str, torch.Tensor]) -> list[str]:
    """Our names for the file's `key` (two for the res5 of a C4 Mask R-CNN, whose mask head is that module too);
    none for a key no conversion knows. ResNet tensors are also put in `resnet` under torchvision's names."""
    if match := HEAD_KEY.fullmatch(key):
        return [f"{HEAD_MODULES[match.group(1)]}.{match.group(2)}"]
    if match := FPN_KEY.fullmatch(key):
        kind, stage, param = match.groups()
        return [f"backbone.fpn.{FPN_BLOCKS[kind]}.{int(stage) - FPN_FIRST_STAGE}.0.{param}"]
    if name := renamed_mask_conv(key):
        return [name]
    if not key.startswith(RESNET_PREFIXES) or _is_group_norm(key, norms_with_statistics):
        return []
    name = rename_detectron2(key)
    if name is None or not RESNET_KEY.fullmatch(name):
        return []
    resnet[name] = value
    if not (is_c4 and name.startswith("layer4.")):
        return [f"backbone.body.{name}"]
    rest = name.removeprefix("layer4.")
    heads = [f"roi_heads.box_head.res5.{rest}", f"roi_heads.mask_head.{rest}"]
    return [heads[0]] + [k for k in heads[1:] if k in expected]


def _is_group_norm(key: str, norms_with_statistics: set[str]) -> bool:
    """A norm's weight or bias without running statistics beside it: GroupNorm (detectron2's RESNETS.NORM "GN")."""
    prefix = re.sub(r"(weight|bias)$", "", key)
    return prefix.endswith(".norm.") and prefix not in norms_with_statistics


def _anchor_layout(model: nn.Module) -> tuple[int, int]:
    """The anchor sizes and aspect ratios per location of `model`'s RPN (its first level), (1, 1) without one."""
    anchors = getattr(getattr(model, "rpn", None), "anchor_generator", None)
    if anchors is None:
        return 1, 1
    return len(anchors.sizes[0]), len(anchors.aspect_ratios[0])


def _convert_classes(state_dict: dict[str, torch.Tensor]) -> None:
    """Background first in `cls_score`; zero background rows in front of class-specific `bbox_pred` and mask logits,
    class-agnostic ones repeated for every class (fast_rcnn.py, mask_head.py)."""
    cls_score = state_dict.get(CLASS_SCORES)
    num_classes = None if cls_score is None else cls_score.shape[0]  # with the background
    scores, boxes, masks = CLASS_LAYERS
    for param in ("weight", "bias"):
        if scores + param in state_dict:
            state_dict[scores + param] = torch.cat([state_dict[scores + param][-1:], state_dict[scores + param][:-1]])
        _with_background(state_dict, boxes + param, 4, num_classes)
        _with_background(state_dict, masks + param, 1, num_classes)


def _with_background(state_dict: dict[str, torch.Tensor], key: str, per_class: int, num_classes: int | None) -> None:
    value = state_dict.get(key)
    if value is None:
        return
    if value.shape[0] == per_class and num_classes is not None and num_classes > 2:
        logger.info("%s is class-agnostic: repeating it for each of the %d classes", key, num_classes)
        state_dict[key] = value.repeat(num_classes, *[1] * (value.dim() - 1))
    else:
        state_dict[key] = torch.cat([value.new_zeros((per_class, *value.shape[1:])), value])


def _reorder_anchors(state_dict: dict[str, torch.Tensor], num_sizes: int, num_ratios: int) -> None:
    """Puts the RPN's outputs in torchvision's anchor order when a location has several sizes and ratios (C4)."""
    if num_sizes == 1 or num_ratios == 1:
        return
    order = detectron2_anchor_order(num_sizes, num_ratios)
    for name, per_anchor in (("cls_logits", 1), ("bbox_pred", 4)):
        rows = torch.tensor([anchor * per_anchor + i for anchor in order for i in range(per_anchor)])
        for param in ("weight", "bias"):
            key = f"rpn.head.{name}.{param}"
            if key in state_dict and state_dict[key].shape[0] == len(rows):
                state_dict[key] = state_dict[key][rows]


def _check(converted: Mapping[str, torch.Tensor], sources: Mapping[str, str], unknown: list[str],
           expected: Mapping[str, torch.Tensor], origin: str, is_c4: bool, resnet: Mapping[str, torch.Tensor]) -> None:
    """Raises a CheckpointMismatchError unless every tensor but the class-dependent ones fits `expected`."""
    expected = {k: v for k, v in expected.items() if not k.endswith("num_batches_tracked")}
    converted = {k: v for k, v in converted.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in converted]
    unexpected = unknown + list(dict.fromkeys(sources[k] for k in converted if k not in expected))
    mismatched = [f"{sources[k]} as {k} ({difference})"
                  for k, difference in tensor_mismatches(converted, expected).items() if not k.startswith(CLASS_LAYERS)]
    if not (missing or unexpected or mismatched):
        return
    hints = [_unknown_kinds(unknown), _layout_hint(converted, expected, is_c4), _resnet_hint(resnet, expected),
             "weights= loads detectron2's Faster and Mask R-CNN, FPN (2fc box head, conv mask head) or C4 "
             "(Res5ROIHeads), on the backbone and with the heads they were trained with."]
    raise CheckpointMismatchError(mismatch_message(
        f"detectron2 detector checkpoint {origin}", missing, unexpected, mismatched, "\n".join(h for h in hints if h)))


def _unknown_kinds(unknown: list[str]) -> str:
    """`It holds what our detectors do not build: cascade box heads (roi_heads.box_head.0, ...); ...`."""
    kinds: dict[str, list[str]] = {}
    for key in unknown:
        kind = next((name for pattern, name in UNKNOWN_KINDS if pattern.match(key)), "other parts")
        kinds.setdefault(kind, []).append(".".join(key.split(".")[:3]))
    if not kinds:
        return ""
    parts = [f"{kind} ({', '.join(list(dict.fromkeys(groups))[:4])}{', ...' if len(set(groups)) > 4 else ''})"
             for kind, groups in kinds.items()]
    return f"It holds {len(unknown)} tensors of what our detectors do not build: {'; '.join(parts)}."


def _layout_hint(converted: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], is_c4: bool) -> str:
    """Which detector the file is when it is not the model's kind or neck."""
    def kind_and_neck(keys, c4: bool) -> tuple[str, str]:
        masks = any(k.startswith("roi_heads.mask_predictor.") for k in keys)
        return "mask_rcnn" if masks else "faster_rcnn", "c4" if c4 else "fpn"

    found = kind_and_neck(converted, is_c4)
    wanted = kind_and_neck(expected, any(k.startswith("roi_heads.box_head.res5.") for k in expected))
    if found == wanted:
        return ""
    names = {"mask_rcnn": "Mask R-CNN", "faster_rcnn": "Faster R-CNN"}
    return (f"The file is a detectron2 {names[found[0]]} with neck={found[1]!r}, the model a {names[wanted[0]]} with "
            f"neck={wanted[1]!r}: build it with heads.{found[0]}(..., neck={found[1]!r}).")


def _resnet_hint(resnet: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """Which ResNet the file has when it is not the model's."""
    ours = {}
    for key, value in expected.items():
        if key.startswith("backbone.body."):
            ours[key.removeprefix("backbone.body.")] = value
        elif key.startswith("roi_heads.box_head.res5."):
            ours["layer4." + key.removeprefix("roi_heads.box_head.res5.")] = value
    found, wanted = resnet_layout(resnet), resnet_layout(ours)
    if not found or not wanted or found == wanted:
        return ""
    return (f"The file's ResNet has {found}, the model's {wanted}: build the detector on the backbone the file was "
            f"trained with, e.g. {MODEL_ZOO_TAGS}.")


def _check_normalisation(state_dict: Mapping[str, torch.Tensor], model: nn.Module, origin: str) -> None:
    """Warns when the file's PIXEL_MEAN / PIXEL_STD (0-255 units), or detectron2's BGR inputs when the file does not
    say, are not what `model` normalises its inputs with."""
    transform = getattr(model, "transform", None)
    if transform is None or not hasattr(transform, "image_mean"):
        return
    channel_order = getattr(transform, "channel_order", "RGB")
    mean = [255.0 * m for m in transform.image_mean]
    std = [255.0 * s for s in transform.image_std]
    ours = f"{channel_order} mean {_numbers(mean)}, std {_numbers(std)} (0-255 units)"
    fix = f"build the detector on the backbone tag the file was trained with, e.g. {MODEL_ZOO_TAGS}"
    if "pixel_mean" in state_dict:
        file_mean = state_dict["pixel_mean"].flatten().tolist()
        file_std = state_dict["pixel_std"].flatten().tolist() if "pixel_std" in state_dict else std
        if not (len(file_mean) == len(mean) and len(file_std) == len(std)
                and torch.allclose(torch.tensor(file_mean), torch.tensor(mean), atol=1e-2)
                and torch.allclose(torch.tensor(file_std), torch.tensor(std), atol=1e-2)):
            logger.warning("%s was trained on inputs normalised with PIXEL_MEAN %s, PIXEL_STD %s; this detector "
                           "normalises %s: %s", origin, _numbers(file_mean), _numbers(file_std), ours, fix)
    elif channel_order != "BGR":
        logger.warning("%s: detectron2's model-zoo detectors take BGR images in 0-255 (INPUT.FORMAT, PIXEL_MEAN); "
                       "this detector normalises %s: %s", origin, ours, fix)


def _numbers(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"
