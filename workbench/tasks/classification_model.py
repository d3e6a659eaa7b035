"""Classifiers of the classification tools: a registered backbone with its head, built from a config or a checkpoint."""
from pathlib import Path

from torch import nn

import backbones
from workbench.engine.checkpoints import load_training_state
from workbench.errors import UserError


def build_classifier(spec: dict, conventions: dict | None = None) -> nn.Module:
    """`create_backbone(spec["backbone"], num_classes=..., pretrained=spec["backbone_weights"], **spec["options"])`;
    null options keep the model's default; `conventions` (those a checkpoint states) replace the pretrained
    config's."""
    options = {key: value for key, value in spec["options"].items() if value is not None}
    return backbones.create_backbone(spec["backbone"], pretrained=spec["backbone_weights"] or False,
                                     num_classes=spec["num_classes"], pretrained_cfg_overlay=conventions, **options)


def load_classifier(path: str | Path) -> tuple[nn.Module, dict]:
    """The classifier a train_cls.py checkpoint describes, with its weights; returns (model, config).

    Raises:
        ValueError: the file is not a train_cls.py checkpoint (it has no "model" and "config" entries, or it is a
            train_det.py checkpoint).
    """
    return classifier_from_state(load_training_state(path), path)


def classifier_from_state(state: object, path: str | Path) -> tuple[nn.Module, dict]:
    """`load_classifier` of the contents `state` already read from the checkpoint `path`."""
    if not isinstance(state, dict) or "model" not in state or "model" not in state.get("config", {}):
        raise UserError(f"{path} is not a train_cls.py checkpoint (expected the keys 'model' and 'config'); "
                         f"use --config with --weights for other weight files")
    config = state["config"]
    if "kind" in config["model"]:
        raise UserError(f"{path} is a train_det.py checkpoint (a {config['model']['kind']} detector), not a "
                        f"classifier; evaluate it with tools/eval_det.py --config CONFIG --weights {path}")
    model = build_classifier(dict(config["model"], backbone_weights=None), state.get("conventions"))
    model.load_state_dict(state["model"])
    return model, config


def classifier_from_weights(spec: dict, weights: str | Path) -> nn.Module:
    """The classifier of `spec` with the weights of any format `backbones.load_weights` reads, and the conventions
    the file carries (see `backbones.conventions`)."""
    return build_classifier(dict(spec, backbone_weights=str(weights)))

