"""YAML configs: inheritance, overrides and unknown keys."""
from pathlib import Path

import pytest

import backbones
from workbench.config.loader import load_config, parse_override
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.config.schemas import DETECTION_DEFAULTS as DEFAULTS

CONFIGS = sorted(Path("configs").glob("*.yaml"))
CLASSIFICATION_CONFIGS = sorted(Path("configs/classification").glob("*.yaml"))


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
    config = load_config(DEFAULTS, path)
    assert config["model"]["kind"] in ("faster_rcnn", "mask_rcnn")


@pytest.mark.parametrize("path", CLASSIFICATION_CONFIGS, ids=[p.stem for p in CLASSIFICATION_CONFIGS])
def test_shipped_classification_configs_load(path):
    config = load_config(CLASSIFICATION_DEFAULTS, path)
    assert config["model"]["backbone"] in backbones.list_backbones()
