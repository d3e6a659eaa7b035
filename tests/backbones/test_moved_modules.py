"""Every module that moved still imports by its old path for one release: the same module object, with a
DeprecationWarning that names the new path; the library itself imports only the new paths."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import backbones
import heads
import workbench.evaluation.detector
import workbench.tasks
from backbones.moved_modules import moved_modules

MOVED = sorted(moved_modules().items())
ROOT = Path(__file__).resolve().parents[2]


def test_every_move_of_the_layout_is_registered():
    assert set(moved_modules()) >= {
        "backbones.layout", "heads.fpn_heads", "heads.c4", "heads.roi_align", "heads.pyramid_scales",
        "heads.detector_weights", "heads.detectron2_weights", "heads.state_names", "workbench.tasks.predictors"}


@pytest.mark.parametrize(("old", "new"), MOVED, ids=[old for old, _ in MOVED])
def test_the_old_path_warns_and_gives_the_new_module(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated: import {new}$"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_from_import_of_a_name_gives_the_same_object(monkeypatch):
    monkeypatch.delitem(sys.modules, "heads.roi_align", raising=False)
    with pytest.warns(DeprecationWarning, match="heads.ops.roi_align") as caught:
        from heads.roi_align import MultiScaleRoIAlign
    assert caught[0].filename == __file__  # the warning names the importing line
    assert MultiScaleRoIAlign is importlib.import_module("heads.ops.roi_align").MultiScaleRoIAlign


def test_the_old_name_of_detect_dataset_warns():
    with pytest.warns(DeprecationWarning, match="import detect_dataset from workbench.evaluation.detector"):
        predict = workbench.evaluation.detector.predict
    assert predict is workbench.evaluation.detector.detect_dataset


def test_unknown_modules_still_fail():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("heads.no_such_module")


def test_the_library_imports_no_old_path():
    """Every module of the three packages, imported with DeprecationWarnings as errors in a fresh interpreter, and
    none of the old paths (nor the `backbones.checkpoint` shim) among them."""
    code = ("import importlib, pkgutil, sys, warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "warnings.filterwarnings('ignore', category=DeprecationWarning, module='(?!backbones|heads|workbench)')\n"
            "for package in ('backbones', 'heads', 'workbench'):\n"
            "    root = importlib.import_module(package)\n"
            "    for info in pkgutil.walk_packages(root.__path__, package + '.'):\n"
            "        if info.name != 'backbones.checkpoint':\n"
            "            importlib.import_module(info.name)\n"
            "old = {'backbones.checkpoint', *importlib.import_module('backbones.moved_modules').moved_modules()}\n"
            "assert not old & set(sys.modules), old & set(sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
