"""Detector weights by name: torchvision's COCO_V1 Mask R-CNN, written from a random torchvision model run with
FrozenBatchNorm eps 0 as torchvision runs it, loads as `maskrcnn_resnet50_fpn.tv_coco_v1` from a local file (or
under its published file name) and gives torchvision's detections; the registry states what each name sets."""
import pytest
import torch
import torchvision
from torchvision.ops import FrozenBatchNorm2d

import backbones
import heads
from backbones.hub import expected_digests
from workbench.benchmarks.detector_inference import realistic_predictors
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.tasks.detection import apply_named_weights

NAME = "maskrcnn_resnet50_fpn.tv_coco_v1"
SETTINGS = dict(min_size=128, max_size=128, box_score_thresh=0.0, box_detections_per_img=20)


@pytest.fixture(scope="module")
def torchvision_coco(tmp_path_factory):
    """torchvision's Mask R-CNN with random weights and BatchNorm statistics of small variances (so that eps 0 and
    1e-5 normalise differently), frozen with eps 0 as torchvision's COCO_V1 model runs; and its saved file."""
    torch.manual_seed(0)
    reference = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                    num_classes=91, **SETTINGS)
    with torch.no_grad():
        for module in reference.backbone.body.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(1e-7, 1e-5)
                module.running_mean.uniform_(-1e-3, 1e-3)
                module.weight.copy_(module.running_var.sqrt() * torch.empty_like(module.weight).uniform_(0.5, 1.5))
                module.bias.uniform_(-0.1, 0.1)
    realistic_predictors(reference)
    path = tmp_path_factory.mktemp("tv") / "coco.pth"
    torch.save(reference.state_dict(), path)
    reference = backbones.freeze_batchnorm(reference).eval()
    for module in reference.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = 0.0  # torchvision's overwrite_eps(model, 0.0)
    return reference, path


def detections(model, images):
    with torch.no_grad():
        return model.eval()(images)


@pytest.mark.parametrize("given", ["weights_file", "published file name"])
def test_named_torchvision_weights_give_torchvisions_detections(torchvision_coco, tmp_path, given):
    reference, path = torchvision_coco
    if given == "weights_file":
        model = heads.mask_rcnn(weights=NAME, weights_file=path, fast_inference=False, **SETTINGS)
    else:
        published = tmp_path / heads.detector_weights_spec(NAME)["file"]
        published.symlink_to(path)
        model = heads.mask_rcnn(weights=published, fast_inference=False, **SETTINGS)
    assert model.num_classes == 91 and model.pretrained_cfg["architecture"] == "resnet50"
    assert {m.eps for m in model.modules() if isinstance(m, FrozenBatchNorm2d)} == {0.0}
    images = [torch.rand(3, 128, 160), torch.rand(3, 96, 128)]
    for want, got in zip(detections(reference, images), detections(model, images)):
        assert len(want["boxes"]) > 0
        torch.testing.assert_close(got["boxes"], want["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(got["scores"], want["scores"], rtol=0, atol=1e-5)
        assert torch.equal(got["labels"], want["labels"])


def test_the_same_file_with_eps_left_at_1e5_gives_other_detections(torchvision_coco):
    reference, path = torchvision_coco
    model = heads.mask_rcnn(num_classes=91, weights=path, fast_inference=False, **SETTINGS)  # a file, no name
    assert {m.eps for m in model.modules() if isinstance(m, FrozenBatchNorm2d)} == {1e-5}
    images = [torch.rand(3, 128, 160)]
    want, got = detections(reference, images)[0], detections(model, images)[0]
    assert got["boxes"].shape != want["boxes"].shape or not torch.allclose(got["boxes"], want["boxes"], atol=1e-4)


@pytest.mark.parametrize("name", heads.list_detector_weights())
def test_every_name_states_a_buildable_detector_its_digest_and_its_published_ap(name):
    spec = heads.detector_weights_spec(name)
    assert spec["kind"] in ("faster_rcnn", "mask_rcnn") and spec["neck"] in ("fpn", "c4")
    backbones.split_name(spec["backbone"])  # a registered backbone tag
    assert expected_digests(spec), "every download is verified"
    assert 30 < spec["box_ap"] < 50 and (spec["mask_ap"] is None) == (spec["kind"] == "faster_rcnn")
    assert spec["num_classes"] == (91 if spec["labels_are_category_ids"] else 81)


def test_names_are_refused_for_the_other_kind_or_backbone_and_misspellings_are_named():
    with pytest.raises(ValueError, match="are faster_rcnn weights; build them with heads.faster_rcnn"):
        heads.mask_rcnn(weights="fasterrcnn_resnet50_fpn.tv_coco_v1")
    with pytest.raises(ValueError, match="weights of a resnet50.tv_in1k detector, not of resnet18"):
        heads.mask_rcnn("resnet18", weights=NAME)
    with pytest.raises(ValueError, match="did you mean maskrcnn_resnet50_fpn.tv_coco_v1"):
        heads.detector_weights_spec("maskrcnn_resnet50_fpn.tv_coco")


def test_a_config_naming_weights_takes_their_classes_and_label_mapping():
    config = load_config(DETECTION_DEFAULTS, "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml",
                         ["model.weights=mask_rcnn_R_50_C4_3x.d2_coco"])
    assert apply_named_weights(config["model"])
    model = config["model"]
    assert (model["kind"], model["backbone"], model["neck"], model["num_classes"]) == (
        "mask_rcnn", "resnet50.msra_in1k", "c4", 81)
    assert not model["labels_are_category_ids"] and model["backbone_weights"] is None
