"""Every module and name that moved still imports by its old path for one release: the same object, with a
DeprecationWarning that names the new path; the library itself imports only the new paths."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import backbones  # noqa: F401 (each package registers its moved modules)
import heads  # noqa: F401
import workbench.tasks  # noqa: F401
from backbones.old_paths import moved_modules

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


MOVED_NAMES = [
    ("workbench.evaluation.detector", "predict", "workbench.evaluation.detector", "detect_dataset"),
    ("workbench.engine.trainer", "args_parser", "workbench.cli.training", "args_parser"),
    ("workbench.data.shapes", "generate", "workbench.cli.shapes", "make_shapes"),
    ("workbench.data.shapes_classification", "generate", "workbench.cli.shapes", "make_shapes_cls"),
    ("workbench.export.pipeline", "export_from_args", "workbench.cli.export", "export"),
    ("workbench.export.subjects", "subject_from_args", "workbench.cli.export", "subject_of"),
    ("workbench.tasks.detection_evaluation", "evaluate", "workbench.cli.evaluation", "evaluate_detections"),
    ("workbench.benchmarks", "add_cases", "workbench.cli.benchmark", "add_cases"),
    ("workbench.benchmarks", "run_benchmark", "workbench.cli.benchmark", "run_benchmark"),
    *[(f"workbench.benchmarks.{module}", "add_arguments", "workbench.cli.benchmark", f"{case}_arguments")
      for module, case in (("backbone", "backbone"), ("detector_inference", "detector_inference"),
                           ("detector_train", "detector_train"), ("coco_eval", "coco_eval"), ("data_pipeline", "data"),
                           ("roi_align", "roi_align"), ("demo_time", "demo"), ("annotation_memory", "annotation_memory"))],
]


@pytest.mark.parametrize(("old_module", "old_name", "new_module", "new_name"), MOVED_NAMES,
                         ids=[f"{module}.{name}" for module, name, _, _ in MOVED_NAMES])
def test_a_moved_name_warns_and_gives_the_new_object(old_module, old_name, new_module, new_name):
    module = importlib.import_module(old_module)
    with pytest.warns(DeprecationWarning, match=rf"{old_module}.{old_name} is deprecated: import {new_name} from "
                                                rf"{new_module}$") as caught:
        moved = getattr(module, old_name)
    assert moved is getattr(importlib.import_module(new_module), new_name)
    assert caught[0].filename == __file__
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


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
            "old = {'backbones.checkpoint', *importlib.import_module('backbones.old_paths').moved_modules()}\n"
            "assert not old & set(sys.modules), old & set(sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
