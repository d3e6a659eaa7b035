"""`backbones.checkpoint` is a deprecated shim over `backbones.weights`: its names still import, with a warning that
names their new module (that the library itself imports none of it: `test_old_paths.py`)."""
import importlib

import pytest

import backbones.checkpoint
import backbones.weights.formats
import backbones.weights.formats.detectron2
import backbones.weights.loading
import backbones.weights.reading

MOVED = [
    ("load_weights", backbones.weights.loading, "load_weights"),
    ("read_checkpoint", backbones.weights.reading, "read_checkpoint"),
    ("read_weights", backbones.weights.reading, "read_weights"),
    ("CheckpointError", backbones.weights.errors, "CheckpointError"),
    ("convert_state_dict", backbones.weights.formats, "convert_state_dict"),
    ("detect_format", backbones.weights.formats, "detect_format"),
    ("strip_shared_prefixes", backbones.weights.formats, "strip_shared_prefixes"),
    ("rename_detectron2", backbones.weights.formats.detectron2, "rename_detectron2"),
    ("BN_EPS", backbones.weights.formats.detectron2, "BN_EPS"),
    ("mismatch_message", backbones.weights.loading, "mismatch_message"),
    ("tensor_mismatches", backbones.weights.loading, "tensor_mismatches"),
]


@pytest.mark.parametrize(("name", "module", "new_name"), MOVED, ids=[name for name, _, _ in MOVED])
def test_the_old_module_warns_and_gives_the_same_object(name, module, new_name):
    with pytest.warns(DeprecationWarning, match=rf"import {new_name} from {module.__name__}"):
        moved = getattr(backbones.checkpoint, name)
    assert moved is getattr(module, new_name)


def test_from_import_warns_too():
    with pytest.warns(DeprecationWarning, match="backbones.weights.loading"):
        from backbones.checkpoint import load_weights
    assert load_weights is backbones.weights.loading.load_weights


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        backbones.checkpoint.no_such_name  # noqa: B018


def test_the_public_names_keep_their_objects():
    assert backbones.load_weights is backbones.weights.load_weights
    assert backbones.CheckpointMismatchError is backbones.weights.errors.CheckpointMismatchError
    assert backbones.read_weights is backbones.weights.reading.read_weights



def test_every_format_has_its_module():
    names = [name for name, _, _ in backbones.weights.formats.FORMATS]
    assert names == ["caffe2", "detectron2", "mmpretrain", "akamaster", "timm_v2", "torchvision"]
    for name, detect, rename in backbones.weights.formats.FORMATS:
        family = "detectron2" if name == "caffe2" else name
        assert detect.__module__ == rename.__module__ == importlib.import_module(
            f"backbones.weights.formats.{family}").__name__
