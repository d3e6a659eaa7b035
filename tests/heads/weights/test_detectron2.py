"""detectron2 model-zoo detectors (FPN and C4 Faster/Mask R-CNN) load with their classes, anchors and heads converted;
what we do not build is refused with a message that says what the file holds.

The detectron2 state dicts are written here from detectron2's module names (facebookresearch/detectron2,
detectron2/modeling/): backbone/fpn.py (FPN: `bottom_up`, `fpn_lateral{2..5}`, `fpn_output{2..5}`), backbone/resnet.py
(BasicStem `stem.conv1`, blocks `res{2..5}.{i}.conv{1,2}` and `shortcut`, each a Conv2d with its FrozenBN `norm`),
proposal_generator/rpn.py (StandardRPNHead: `conv`, `objectness_logits`, `anchor_deltas`), roi_heads/box_head.py
(FastRCNNConvFCHead: `fc1`, `fc2`), roi_heads/fast_rcnn.py (FastRCNNOutputLayers: `cls_score` with num_classes + 1
outputs, background last; `bbox_pred` with 4 per foreground class), roi_heads/mask_head.py (MaskRCNNConvUpsampleHead:
`mask_fcn{k}`, `deconv`, `predictor` with one channel per foreground class), roi_heads/roi_heads.py (Res5ROIHeads:
`roi_heads.res5`), roi_heads/cascade_rcnn.py (`box_head.{stage}`, `box_predictor.{stage}`), roi_heads/keypoint_head.py
(`conv_fcn{k}`, `score_lowres`).
"""
import logging
import pickle

import pytest
import torch
import torch.nn.functional as F

import heads
from backbones import CheckpointMismatchError

FOREGROUND = 2  # detectron2's NUM_CLASSES; ours counts the background too
# resnet18 (detectron2's R18: BasicBlock, RES2_OUT_CHANNELS 64): stage -> (in, out) channels, two blocks each
RESNET18 = {2: (64, 64), 3: (64, 128), 4: (128, 256), 5: (256, 512)}
FPN_CHANNELS, REPRESENTATION, MASK_CHANNELS = 64, 128, 32  # conftest's FAST_HEADS / FAST_MASK_HEADS
C4_SIZES, RATIOS = (32, 64, 128, 256, 512), (0.5, 1.0, 2.0)  # detectron2/config/defaults.py ANCHOR_GENERATOR


def conv(out: int, inp: int, k: int, bias: bool = True, transposed: bool = False,
         std: float | None = None) -> dict[str, torch.Tensor]:
    """Random weights, He-scaled unless `std` is given (detectron2 initialises its predictors with a small std)."""
    std = (2 / (inp * k * k)) ** 0.5 if std is None else std
    weight = torch.randn((inp, out, k, k) if transposed else (out, inp, k, k)) * std
    return {"weight": weight, **({"bias": torch.randn(out) * 0.1} if bias else {})}


def conv_norm(name: str, out: int, inp: int, k: int) -> dict[str, torch.Tensor]:
    """A detectron2 Conv2d without bias and its FrozenBatchNorm2d `norm` (layers/batch_norm.py: weight, bias,
    running_mean, running_var)."""
    norm = dict(weight=0.5 + 0.1 * torch.randn(out), bias=0.1 * torch.randn(out), running_mean=0.1 * torch.randn(out),
                running_var=torch.empty(out).uniform_(0.5, 1.5))
    weight = conv(out, inp, k, bias=False)["weight"]
    return {f"{name}.weight": weight, **{f"{name}.norm.{param}": v for param, v in norm.items()}}


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def detectron2_state_dict(neck: str, with_masks: bool, num_anchors: int | None = None) -> dict[str, torch.Tensor]:
    """A randomly initialised detectron2 R18 Faster/Mask R-CNN, FPN (Base-RCNN-FPN.yaml) or C4 (Base-RCNN-C4.yaml)."""
    torch.manual_seed(0)
    body = "backbone.bottom_up" if neck == "fpn" else "backbone"
    tensors = conv_norm(f"{body}.stem.conv1", 64, 3, 7)
    for stage, (inp, out) in RESNET18.items():
        prefix = "roi_heads.res5" if neck == "c4" and stage == 5 else f"{body}.res{stage}"
        for block in range(2):
            cin = inp if block == 0 else out
            tensors.update(conv_norm(f"{prefix}.{block}.conv1", out, cin, 3))
            tensors.update(conv_norm(f"{prefix}.{block}.conv2", out, out, 3))
            if cin != out:
                tensors.update(conv_norm(f"{prefix}.{block}.shortcut", out, cin, 1))
    if neck == "fpn":
        for stage, (_, out) in RESNET18.items():
            tensors.update(prefixed(f"backbone.fpn_lateral{stage}", conv(FPN_CHANNELS, out, 1)))
            tensors.update(prefixed(f"backbone.fpn_output{stage}", conv(FPN_CHANNELS, FPN_CHANNELS, 3)))
        rpn_channels, anchors, head_width = FPN_CHANNELS, num_anchors or len(RATIOS), REPRESENTATION
        tensors.update(prefixed("roi_heads.box_head.fc1", dict(weight=torch.randn(REPRESENTATION, 64 * 49) * 0.02,
                                                                bias=torch.randn(REPRESENTATION) * 0.1)))
        tensors.update(prefixed("roi_heads.box_head.fc2", dict(weight=torch.randn(REPRESENTATION, REPRESENTATION) * 0.1,
                                                                bias=torch.randn(REPRESENTATION) * 0.1)))
    else:
        rpn_channels, anchors, head_width = 256, num_anchors or len(C4_SIZES) * len(RATIOS), 512
    tensors.update(prefixed("proposal_generator.rpn_head.conv", conv(rpn_channels, rpn_channels, 3, std=0.01)))
    tensors.update(prefixed("proposal_generator.rpn_head.objectness_logits",
                            conv(anchors, rpn_channels, 1, std=0.01)))
    tensors.update(prefixed("proposal_generator.rpn_head.anchor_deltas", conv(4 * anchors, rpn_channels, 1, std=0.01)))
    tensors.update(prefixed("roi_heads.box_predictor.cls_score", dict(
        weight=torch.randn(FOREGROUND + 1, head_width) * 0.1, bias=torch.randn(FOREGROUND + 1))))
    tensors.update(prefixed("roi_heads.box_predictor.bbox_pred", dict(
        weight=torch.randn(4 * FOREGROUND, head_width) * 0.01, bias=torch.randn(4 * FOREGROUND) * 0.1)))
    if with_masks:
        mask_input = FPN_CHANNELS if neck == "fpn" else 512
        for k in (1, 2) if neck == "fpn" else ():
            tensors.update(prefixed(f"roi_heads.mask_head.mask_fcn{k}", conv(MASK_CHANNELS, mask_input, 3)))
            mask_input = MASK_CHANNELS
        tensors.update(prefixed("roi_heads.mask_head.deconv", conv(MASK_CHANNELS, mask_input, 2, transposed=True)))
        tensors.update(prefixed("roi_heads.mask_head.predictor", conv(FOREGROUND, MASK_CHANNELS, 1)))
    return tensors


def save(tensors: dict[str, torch.Tensor], path, file_format: str) -> str:
    """As the model zoo ships it (a pickle of numpy arrays) or as detectron2's training saves it (torch.save)."""
    if file_format == "pkl":
        with open(path.with_suffix(".pkl"), "wb") as file:
            pickle.dump({"model": {k: v.numpy() for k, v in tensors.items()}, "__author__": "Detectron2 Model Zoo"},
                        file)
        return str(path.with_suffix(".pkl"))
    torch.save({"model": tensors, "iteration": 89999, "optimizer": {}}, path.with_suffix(".pth"))
    return str(path.with_suffix(".pth"))


def our_names(tensors: dict[str, torch.Tensor], neck: str, with_masks: bool) -> dict[str, torch.Tensor]:
    """What our detector must hold for `tensors`, renamed and converted independently of heads.weights.detectron2."""
    ours = {}
    for key, value in tensors.items():
        name = (key.replace("backbone.bottom_up.", "backbone.body.").replace("backbone.stem.", "backbone.body.stem.")
                .replace("backbone.res", "backbone.body.res").replace("roi_heads.res5.", "roi_heads.box_head.res5.")
                .replace("stem.conv1.norm.", "bn1.").replace("stem.conv1.", "conv1.")
                .replace(".conv1.norm.", ".bn1.").replace(".conv2.norm.", ".bn2.")
                .replace(".shortcut.norm.", ".downsample.1.").replace(".shortcut.", ".downsample.0."))
        for stage in RESNET18:
            name = name.replace(f"body.res{stage}.", f"body.layer{stage - 1}.")
        for stage in RESNET18:
            name = name.replace(f"fpn_lateral{stage}.", f"fpn.inner_blocks.{stage - 2}.0.")
            name = name.replace(f"fpn_output{stage}.", f"fpn.layer_blocks.{stage - 2}.0.")
        name = (name.replace("proposal_generator.rpn_head.conv.", "rpn.head.conv.0.0.")
                .replace("proposal_generator.rpn_head.objectness_logits.", "rpn.head.cls_logits.")
                .replace("proposal_generator.rpn_head.anchor_deltas.", "rpn.head.bbox_pred.")
                .replace("box_head.fc1.", "box_head.fc6.").replace("box_head.fc2.", "box_head.fc7.")
                .replace("mask_head.mask_fcn1.", "mask_head.0.0.").replace("mask_head.mask_fcn2.", "mask_head.1.0.")
                .replace("mask_head.deconv.", "mask_predictor.conv5_mask.")
                .replace("mask_head.predictor.", "mask_predictor.mask_fcn_logits."))
        if name.endswith(("cls_score.weight", "cls_score.bias")):
            value = torch.cat([value[FOREGROUND:], value[:FOREGROUND]])  # background from last to first
        elif name.endswith(("bbox_pred.weight", "bbox_pred.bias")) and "box_predictor" in name:
            value = torch.cat([torch.zeros_like(value[:4]), value])
        elif "mask_fcn_logits" in name:
            value = torch.cat([torch.zeros_like(value[:1]), value])
        elif neck == "c4" and name.startswith("rpn.head.") and "conv" not in name:
            per_anchor = 4 if "bbox_pred" in name else 1  # detectron2: size by size; torchvision: ratio by ratio
            anchors = [s * len(RATIOS) + r for r in range(len(RATIOS)) for s in range(len(C4_SIZES))]
            value = value.view(len(anchors), per_anchor, *value.shape[1:])[anchors].flatten(0, 1)
        ours[name] = value
        if neck == "c4" and with_masks and name.startswith("roi_heads.box_head.res5."):
            ours[name.replace("box_head.res5.", "mask_head.")] = value  # C4's mask head is the same res5 module
    return ours


def options(kind: str, neck: str, fast_options) -> dict:
    settings = dict(fast_options(kind, neck), box_score_thresh=0.0, roi_align_aligned=True, roi_sampling_ratio=0)
    return settings | (dict(anchor_sizes=C4_SIZES, size_divisible=1) if neck == "c4" else {})


def without_counters(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("kind,neck,file_format", [
    ("mask_rcnn", "fpn", "pkl"), ("faster_rcnn", "fpn", "pth"), ("mask_rcnn", "c4", "pth"),
    ("faster_rcnn", "c4", "pkl"),
])
def test_detectron2_detector_loads_and_detects_as_its_weights_say(kind, neck, file_format, tmp_path, fast_options):
    with_masks = kind == "mask_rcnn"
    source = detectron2_state_dict(neck, with_masks)
    path = save(source, tmp_path / "model_final", file_format)
    model = heads.build_detector(kind, backbone="resnet18", num_classes=FOREGROUND + 1, weights=path,
                                 **options(kind, neck, fast_options)).eval()
    expected = our_names(source, neck, with_masks)
    loaded = without_counters(model.state_dict())
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.items())

    torch.manual_seed(1)
    reference = heads.build_detector(kind, backbone="resnet18", num_classes=FOREGROUND + 1, norm="frozen_bn",
                                     frozen_stages=1, **options(kind, neck, fast_options))
    reference.load_state_dict(expected)
    images = [torch.rand(3, 128, 160), torch.rand(3, 96, 128)]
    with torch.no_grad():
        want, got = reference.eval()(images), model(images)
    for want_image, got_image in zip(want, got):
        assert got_image.keys() == want_image.keys() and len(got_image["scores"]) > 0
        assert all(torch.equal(got_image[k], want_image[k]) for k in want_image)


def test_heads_compute_what_detectron2_computes(tmp_path, fast_options):
    """Our C4 RPN, box predictor and mask logits against detectron2's formulas on the file's raw tensors."""
    source = detectron2_state_dict("c4", with_masks=True)
    path = save(source, tmp_path / "model_final", "pkl")
    model = heads.mask_rcnn("resnet18", num_classes=FOREGROUND + 1, weights=path, **options("mask_rcnn", "c4",
                                                                                          fast_options))
    raw = {k.split(".", 2)[-1]: v for k, v in source.items() if "rpn_head" in k or "predictor" in k}
    with torch.no_grad():
        features = torch.randn(1, 256, 6, 5)
        objectness, deltas = model.rpn.head([features])
        hidden = F.relu(F.conv2d(features, raw["conv.weight"], raw["conv.bias"], padding=1))
        d2_objectness = F.conv2d(hidden, raw["objectness_logits.weight"], raw["objectness_logits.bias"])
        d2_deltas = F.conv2d(hidden, raw["anchor_deltas.weight"], raw["anchor_deltas.bias"]).unflatten(1, (-1, 4))
        # anchor_generator.py generate_cell_anchors: for size, for ratio: w = sqrt(size^2 / ratio), h = ratio * w
        cell = model.rpn.anchor_generator.cell_anchors[0]
        for r, ratio in enumerate(RATIOS):
            for s, size in enumerate(C4_SIZES):
                ours, theirs = r * len(C4_SIZES) + s, s * len(RATIOS) + r
                torch.testing.assert_close(objectness[0][:, ours], d2_objectness[:, theirs], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(deltas[0].unflatten(1, (-1, 4))[:, ours], d2_deltas[:, theirs],
                                           rtol=1e-5, atol=1e-5)
                width = (size**2 / ratio) ** 0.5
                d2_anchor = torch.tensor([-width, -ratio * width, width, ratio * width]) / 2
                assert (cell[ours] - d2_anchor).abs().max() <= 0.5  # torchvision rounds to whole pixels

        boxes = torch.randn(6, 512)
        scores, box_deltas = model.roi_heads.box_predictor(boxes)
        d2_probs = F.softmax(F.linear(boxes, raw["cls_score.weight"], raw["cls_score.bias"]), dim=-1)
        torch.testing.assert_close(F.softmax(scores, dim=-1), torch.cat([d2_probs[:, -1:], d2_probs[:, :-1]], dim=1))
        d2_box_deltas = F.linear(boxes, raw["bbox_pred.weight"], raw["bbox_pred.bias"])
        torch.testing.assert_close(box_deltas[:, 4:], d2_box_deltas)  # label k + 1 is detectron2's class k

        masks = torch.randn(3, MASK_CHANNELS, 14, 14)
        logits = model.roi_heads.mask_predictor.mask_fcn_logits(masks)
        torch.testing.assert_close(logits[:, 1:], F.conv2d(masks, raw["predictor.weight"], raw["predictor.bias"]))


def test_other_number_of_classes_and_class_agnostic_heads(tmp_path, fast_options, caplog):
    source = detectron2_state_dict("fpn", with_masks=True)
    path = save(source, tmp_path / "model_final", "pkl")
    settings = options("mask_rcnn", "fpn", fast_options)
    with caplog.at_level(logging.WARNING, logger="heads.weights"):
        model = heads.mask_rcnn("resnet18", num_classes=5, weights=path, **settings)
    assert "number of classes differs" in caplog.text and "cls_score.weight" in caplog.text
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    expected = our_names(source, "fpn", with_masks=True)
    predictors = ("cls_score", "bbox_pred", "mask_fcn_logits")
    loaded = without_counters(model.state_dict())
    assert all(torch.equal(v, expected[k]) for k, v in loaded.items() if not any(p in k for p in predictors))

    # CLS_AGNOSTIC_BBOX_REG / CLS_AGNOSTIC_MASK: one box and one mask for every class
    source["roi_heads.box_predictor.bbox_pred.weight"] = source["roi_heads.box_predictor.bbox_pred.weight"][:4]
    source["roi_heads.box_predictor.bbox_pred.bias"] = source["roi_heads.box_predictor.bbox_pred.bias"][:4]
    source["roi_heads.mask_head.predictor.weight"] = source["roi_heads.mask_head.predictor.weight"][:1]
    source["roi_heads.mask_head.predictor.bias"] = source["roi_heads.mask_head.predictor.bias"][:1]
    path = save(source, tmp_path / "agnostic", "pth")
    model = heads.mask_rcnn("resnet18", num_classes=FOREGROUND + 1, weights=path, **settings)
    bbox_pred = model.roi_heads.box_predictor.bbox_pred.weight
    assert all(torch.equal(bbox_pred[4 * k:4 * k + 4], source["roi_heads.box_predictor.bbox_pred.weight"])
               for k in range(FOREGROUND + 1))
    mask_logits = model.roi_heads.mask_predictor.mask_fcn_logits.bias
    assert torch.equal(mask_logits, source["roi_heads.mask_head.predictor.bias"].repeat(FOREGROUND + 1))


def test_normalisation_that_is_not_the_files_is_warned_about(tmp_path, fast_options, caplog):
    source = detectron2_state_dict("fpn", with_masks=False)
    settings = options("faster_rcnn", "fpn", fast_options)
    with caplog.at_level(logging.WARNING, logger="heads.weights.detectron2"):
        heads.faster_rcnn("resnet18", num_classes=3, weights=save(source, tmp_path / "a", "pkl"), **settings)
    assert "detectron2's model-zoo detectors take BGR images in 0-255" in caplog.text
    assert "resnet50.msra_in1k" in caplog.text
    caplog.clear()
    # older detectron2 versions saved GeneralizedRCNN's pixel_mean and pixel_std (BGR, 0-255)
    source |= dict(pixel_mean=torch.tensor([103.530, 116.280, 123.675]).view(3, 1, 1), pixel_std=torch.ones(3, 1, 1))
    with caplog.at_level(logging.WARNING, logger="heads.weights.detectron2"):
        heads.faster_rcnn("resnet18", num_classes=3, weights=save(source, tmp_path / "b", "pkl"), **settings)
    assert "PIXEL_MEAN (103.530, 116.280, 123.675), PIXEL_STD (1.000, 1.000, 1.000)" in caplog.text
    assert "RGB mean (123.675, 116.280, 103.530)" in caplog.text


def cascade(tensors: dict) -> dict:
    """Cascade R-CNN's three stages (cascade_rcnn.py: box_head and box_predictor are ModuleLists)."""
    heads_keys = [k for k in tensors if k.startswith(("roi_heads.box_head.", "roi_heads.box_predictor."))]
    stages = {k.replace("_head.", f"_head.{i}.").replace("_predictor.", f"_predictor.{i}."): tensors[k]
              for k in heads_keys for i in range(3)}
    return {k: v for k, v in tensors.items() if k not in heads_keys} | stages


def keypoints(tensors: dict) -> dict:
    """Keypoint R-CNN's head (keypoint_head.py: KRCNNConvDeconvUpsampleHead)."""
    head = prefixed("roi_heads.keypoint_head.conv_fcn1", conv(32, FPN_CHANNELS, 3))
    return tensors | head | prefixed("roi_heads.keypoint_head.score_lowres", conv(17, 32, 4, transposed=True))


def group_norm_fpn(tensors: dict) -> dict:
    """An FPN with GroupNorm (FPN.NORM "GN": `fpn_lateral2.norm`, no running statistics)."""
    return tensors | {"backbone.fpn_lateral2.norm.weight": torch.ones(FPN_CHANNELS),
                      "backbone.fpn_lateral2.norm.bias": torch.zeros(FPN_CHANNELS)}


def narrower_box_head(tensors: dict) -> dict:
    return tensors | {"roi_heads.box_head.fc1.weight": torch.zeros(96, 64 * 49)}


@pytest.mark.parametrize("make, neck, model_neck, texts", [
    (cascade, "fpn", "fpn", [
        "24 unexpected keys: roi_heads.box_head.0.fc1.weight", "8 missing keys: roi_heads.box_head.fc6.weight",
        "It holds 24 tensors of what our detectors do not build: cascade box heads (Cascade R-CNN) "
        "(roi_heads.box_head.0, roi_heads.box_head.1, roi_heads.box_head.2, roi_heads.box_predictor.0, ...)"]),
    (keypoints, "fpn", "fpn", [
        "4 unexpected keys: roi_heads.keypoint_head.conv_fcn1.weight",
        "a keypoint head (Keypoint R-CNN) (roi_heads.keypoint_head.conv_fcn1, roi_heads.keypoint_head.score_lowres)"]),
    (group_norm_fpn, "fpn", "fpn", [
        "GroupNorm layers (norms without running statistics) (backbone.fpn_lateral2.norm)"]),
    (narrower_box_head, "fpn", "fpn", [
        "1 shape or dtype mismatches: roi_heads.box_head.fc1.weight as roi_heads.box_head.fc6.weight "
        "(checkpoint (96, 3136), model (128, 3136))"]),
    (lambda tensors: tensors, "c4", "fpn", [
        "The file is a detectron2 Faster R-CNN with neck='c4', the model a Faster R-CNN with neck='fpn': "
        "build it with heads.faster_rcnn(..., neck='c4')."]),
], ids=["cascade", "keypoints", "group_norm", "shapes", "c4_into_fpn"])
def test_what_we_do_not_build_is_refused_saying_what_it_is(make, neck, model_neck, texts, tmp_path, fast_options):
    path = save(make(detectron2_state_dict(neck, with_masks=False)), tmp_path / "model_final", "pkl")
    with pytest.raises(CheckpointMismatchError) as raised:
        heads.faster_rcnn("resnet18", num_classes=FOREGROUND + 1, weights=path,
                          **options("faster_rcnn", model_neck, fast_options))
    message = str(raised.value)
    assert f"detectron2 detector checkpoint {path} does not match the model:" in message
    for text in texts:
        assert text in message


def test_other_resnet_is_named(tmp_path, fast_options):
    path = save(detectron2_state_dict("fpn", with_masks=False), tmp_path / "model_final", "pth")
    with pytest.raises(CheckpointMismatchError, match="The file's ResNet has basic blocks 2-2-2-2, the model's basic "
                                                      "blocks 3-4-6-3: build the detector on the backbone"):
        heads.faster_rcnn("resnet34", num_classes=FOREGROUND + 1, weights=path,
                          **options("faster_rcnn", "fpn", fast_options))
