"""YAML configs: inheritance, overrides and unknown keys."""
from pathlib import Path

import pytest

import backbones
from workbench.config.checks import check_values
from workbench.config.loader import load_config, parse_override
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.config.schemas import DETECTION_DEFAULTS as DEFAULTS

CONFIGS = sorted(Path("configs").glob("*.yaml"))
CLASSIFICATION_CONFIGS = sorted(Path("configs/classification").glob("*.yaml"))
C4_CONFIGS = [path for path in CONFIGS if load_config(DEFAULTS, path)["model"]["neck"] == "c4"]
# detectron2's RPN proposal counts for C4, one level: detectron2/config/defaults.py, MODEL.RPN.PRE_NMS_TOPK_TRAIN,
# PRE_NMS_TOPK_TEST, POST_NMS_TOPK_TRAIN, POST_NMS_TOPK_TEST (configs/Base-RCNN-C4.yaml restates the test pair)
DETECTRON2_C4_RPN = {"rpn_pre_nms_top_n_train": 12000, "rpn_pre_nms_top_n_test": 6000,
                     "rpn_post_nms_top_n_train": 2000, "rpn_post_nms_top_n_test": 1000}


def test_override_values_are_parsed_as_yaml():
    assert parse_override("solver.steps=[10, 20]") == {"solver": {"steps": [10, 20]}}
    assert parse_override("model.weights=null") == {"model": {"weights": None}}
    assert parse_override("solver.lr=1e-3") == {"solver": {"lr": 1e-3}}


def test_base_files_and_overrides_merge_in_order(tmp_path):
    (tmp_path / "base.yaml").write_text("solver:\n  lr: 0.5\n  max_iter: 10\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nsolver:\n  max_iter: 20\n")
    config = load_config(DEFAULTS, tmp_path / "child.yaml", ["solver.lr=0.1"])
    assert config["solver"]["lr"] == 0.1 and config["solver"]["max_iter"] == 20
    assert config["solver"]["momentum"] == DEFAULTS["solver"]["momentum"]


def test_unknown_key_in_a_file_names_the_closest_valid_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("solver:\n  max_iters: 10\n")
    with pytest.raises(ValueError, match=r"unknown config key 'solver.max_iters' in .*bad.yaml; did you mean "
                                         r"'solver.max_iter'"):
        load_config(DEFAULTS, tmp_path / "bad.yaml")


def test_unknown_override_names_the_closest_valid_key():
    with pytest.raises(ValueError, match="did you mean 'data.batch_size'"):
        load_config(DEFAULTS, None, ["data.batchsize=4"])


@pytest.mark.parametrize("defaults, old, new", [
    (CLASSIFICATION_DEFAULTS, "model.name", "model.backbone"),
    (CLASSIFICATION_DEFAULTS, "model.pretrained", "model.backbone_weights"),
    (DEFAULTS, "model.frozen_stages", "model.options.frozen_stages"),
    (DEFAULTS, "model.norm", "model.options.norm"),
])
def test_a_renamed_key_names_its_new_name(tmp_path, defaults, old, new):
    with pytest.raises(ValueError, match=f"config key '{old}' in override .* is now '{new}'"):
        load_config(defaults, None, [f"{old}=1"])
    section, key = old.split(".")
    (tmp_path / "old.yaml").write_text(f"{section}:\n  {key}: 1\n")
    with pytest.raises(ValueError, match=f"config key '{old}' in .*old.yaml is now '{new}'"):
        load_config(defaults, tmp_path / "old.yaml")


def test_model_options_are_free_form():
    assert load_config(DEFAULTS, None, ["model.options.min_size=128"])["model"]["options"] == {"min_size": 128}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    config = check_values(load_config(DEFAULTS, path))
    assert config["model"]["kind"] in ("faster_rcnn", "mask_rcnn")


@pytest.mark.parametrize("path", C4_CONFIGS, ids=[p.stem for p in C4_CONFIGS])
def test_c4_configs_take_detectron2s_proposal_counts(path):
    options = load_config(DEFAULTS, path)["model"]["options"]
    assert {key: options.get(key) for key in DETECTRON2_C4_RPN} == DETECTRON2_C4_RPN


@pytest.mark.parametrize("path", CLASSIFICATION_CONFIGS, ids=[p.stem for p in CLASSIFICATION_CONFIGS])
def test_shipped_classification_configs_load(path):
    config = check_values(load_config(CLASSIFICATION_DEFAULTS, path))
    assert config["model"]["backbone"] in backbones.list_backbones()


@pytest.mark.parametrize("override, message", [
    ("solver.lr=-0.1", r"solver.lr=-0.1 is impossible; expected a number > 0"),
    ("solver.lr=fast", r"solver.lr='fast' is impossible"),
    ("data.batch_size=0", r"data.batch_size=0 is impossible; expected an integer >= 1"),
    ("solver.max_iter=500", r"solver.warmup_iters=1000 is not below solver.max_iter=500"),
    ("solver.steps=[80000,60000]", r"solver.steps=\[80000, 60000\] is impossible; expected a list of increasing"),
    ("solver.momentum=1.5", r"solver.momentum=1.5 is impossible"),
    ("data.workers=-1", r"data.workers=-1 is impossible"),
    ("solver.clip_grad_norm=0", r"solver.clip_grad_norm=0 is impossible"),
    ("solver.on_nonfinite=ignore", r"solver.on_nonfinite='ignore' is impossible; expected stop or skip"),
    ("data.unreadable_images=maybe", r"data.unreadable_images='maybe' is impossible; expected skip or stop"),
    ("solver.reference_batch_size=0", r"solver.reference_batch_size=0 is impossible; expected null or an integer >= 1"),
    ("model.neck=c5", r"model.neck='c5' is impossible; expected fpn or c4"),
])
def test_impossible_values_are_caught_before_any_work(override, message):
    with pytest.raises(ValueError, match=message):
        check_values(load_config(DEFAULTS, "configs/mask_rcnn_r50_fpn_1x_coco.yaml", [override]))


@pytest.mark.parametrize("overrides, message", [
    (["solver.warmup_until_error=100"], r"solver.warmup_until_error=100 is impossible; expected null or a training "
                                        r"error in percent, in \(0, 100\)"),
    (["solver.warmup_until_error=80", "solver.warmup_iters=400"],
     r"solver.warmup_until_error=80 and solver.warmup_iters=400 are two warm-ups"),
])
def test_an_impossible_error_warmup_is_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        check_values(load_config(CLASSIFICATION_DEFAULTS, None, overrides))


@pytest.mark.parametrize("defaults, overrides, message", [
    (DEFAULTS, ["model.options.rpn_post_nms_top_n_trian=100"], r"model.options.rpn_post_nms_top_n_trian is not an "
     r"option of a mask_rcnn detector with neck='fpn'; expected one of rpn_post_nms_top_n_train, "),
    (DEFAULTS, ["model.kind=faster_rcnn", "model.options.mask_head_convs=2"],
     r"model.options.mask_head_convs is not an option of a faster_rcnn detector with neck='fpn'"),
    (DEFAULTS, ["model.neck=c4", "model.options.fpn_channels=128"],
     r"model.options.fpn_channels is not an option of a mask_rcnn detector with neck='c4'"),
    (DEFAULTS, ["model.weights=faster_rcnn_R_50_C4_3x.d2_coco", "model.options.fpn_channels=128"],
     r"model.options.fpn_channels is not an option of a faster_rcnn detector with neck='c4'"),  # the weights' neck
    (CLASSIFICATION_DEFAULTS, ["model.options.drop_rat=0.1"],
     r"model.options.drop_rat is not an option of a classifier; expected one of drop_rate, "),
    (CLASSIFICATION_DEFAULTS, ["model.options.num_classes=5"], r"model.options.num_classes is not an option"),
])
def test_an_unknown_model_option_is_named_with_the_valid_ones_closest_first(defaults, overrides, message):
    with pytest.raises(ValueError, match=message):
        check_values(load_config(defaults, None, overrides))


def test_a_config_of_the_other_kind_is_named():
    with pytest.raises(ValueError, match=r"resnet18_shapes_cls.yaml belongs to classification configs: this looks "
                                         r"like a classification config"):
        load_config(DEFAULTS, "configs/classification/resnet18_shapes_cls.yaml")
    with pytest.raises(ValueError, match=r"'model.kind' in .*shapes_cpu.yaml belongs to detection configs"):
        load_config(CLASSIFICATION_DEFAULTS, "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml")


def test_a_missing_base_and_bad_yaml_name_their_files(tmp_path):
    (tmp_path / "child.yaml").write_text("_base_: parent.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"parent.yaml \(the _base_ of .*child.yaml\)"):
        load_config(DEFAULTS, tmp_path / "child.yaml")
    (tmp_path / "broken.yaml").write_text("solver: [lr: 1\n")
    with pytest.raises(ValueError, match=r"broken.yaml is not valid YAML"):
        load_config(DEFAULTS, tmp_path / "broken.yaml")
