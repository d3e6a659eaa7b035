"""The command-line tools: each starts and prints its help, each is thin (argparse and one call into the
library, importing no other tool), and a wrong weights file or an impossible config value is one error line with
exit code 2."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import backbones
from workbench import cli
from workbench.cli import evaluation, training
from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.detection import DetectionTask

TOOLS = sorted(Path("tools").glob("*.py"))
DEMO_CONFIG = "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml"


@pytest.mark.slow
def test_every_tool_starts_and_prints_its_help():
    script = (
        "import runpy, sys\n"
        "for path in sys.argv[1:]:\n"
        "    sys.argv = [path, '--help']\n"
        "    try:\n"
        "        runpy.run_path(path, run_name='__main__')\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, path\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *map(str, TOOLS)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("usage:") == len(TOOLS)


@pytest.mark.parametrize("path", TOOLS, ids=lambda path: path.name)
def test_tool_is_argparse_and_one_call_into_the_library(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {tool.stem for tool in TOOLS}, "a tool imports another tool"
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert set(functions) == {"get_args_parser", "main"}
    body = functions["main"].body
    assert len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call)


def test_a_classifier_given_to_eval_det_is_one_error_line(tmp_path, tool_parser, quick_overrides, capsys):
    path = tmp_path / "classifier.pth"
    classifier = backbones.create_backbone("resnet18", num_classes=4).state_dict()
    torch.save({"model": classifier, "iteration": 3, "config": {"model": {"backbone": "resnet18"}}}, path)
    argv = ["--config", DEMO_CONFIG, "--weights", str(path), *quick_overrides]
    with pytest.raises(SystemExit) as exit:
        cli.run(evaluation.evaluate_detections, tool_parser("eval_det"), argv)
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path} is a classifier checkpoint (torchvision format), not a whole detector")
    assert len(error.splitlines()) == 1 and f"model.backbone_weights={path}" in error


def test_an_unknown_model_option_given_to_eval_det_is_one_error_line_before_any_work(tmp_path, tool_parser, capsys):
    """Neither the data folder nor the weights file exists: any work begun would end in another error."""
    argv = ["--config", DEMO_CONFIG, "--weights", str(tmp_path / "missing.pth"), f"data.root={tmp_path / 'no_data'}",
            "model.options.box_score_tresh=0.5"]
    with pytest.raises(SystemExit) as exit:
        cli.run(evaluation.evaluate_detections, tool_parser("eval_det"), argv)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and len(error.splitlines()) == 1
    assert error.startswith("error: model.options.box_score_tresh is not an option of a mask_rcnn detector with "
                            "neck='fpn'; expected one of box_score_thresh, ")


TRAINING = {  # tool: what its main calls, a shipped config
    "train_det": (lambda args: training.train(args, DETECTION_DEFAULTS, DetectionTask),
                  "configs/mask_rcnn_r50_fpn_1x_coco.yaml"),
    "train_cls": (lambda args: training.train(args, CLASSIFICATION_DEFAULTS, ClassificationTask),
                  "configs/classification/resnet18_imagenet.yaml"),
}


@pytest.mark.parametrize("tool, override, message", [
    ("train_det", "solver.lr=-0.1", "solver.lr=-0.1 is impossible; expected a number > 0"),
    ("train_det", "solver.max_iter=500", "solver.warmup_iters=1000 is not below solver.max_iter=500"),
    ("train_cls", "data.batch_size=0", "data.batch_size=0 is impossible; expected an integer >= 1"),
    ("train_cls", "solver.warmup_until_error=100", "solver.warmup_until_error=100 is impossible"),
    ("train_det", "model.options.rpn_post_nms_top_n_trian=100",
     "model.options.rpn_post_nms_top_n_trian is not an option of a mask_rcnn detector"),
    ("train_cls", "model.options.drop_rat=0.1", "model.options.drop_rat is not an option of a classifier"),
])
def test_an_impossible_config_value_exits_2_before_any_work(tmp_path, tool_parser, capsys, tool, override, message):
    """The data folder does not exist and no weights are named: any work begun would end in another error."""
    main, config = TRAINING[tool]
    argv = ["--config", config, "--output-dir", str(tmp_path / "run"), f"data.root={tmp_path / 'no_data'}",
            "model.backbone_weights=null", override]
    with pytest.raises(SystemExit) as exit:
        cli.run(main, tool_parser(tool), argv)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and error.startswith("error: ") and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_segm_scores_against_ground_truth_without_masks_are_one_error_line(tmp_path, tool_parser, capsys):
    gt = tmp_path / "boxes_only.json"
    gt.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}]}))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "score": 0.9,
                                 "segmentation": {"size": [32, 32], "counts": "0"}}]))
    with pytest.raises(SystemExit) as exit:
        cli.run(evaluation.evaluate_detections, tool_parser("eval_det"),
                ["--gt", str(gt), "--dets", str(dets), "--iou-types", "bbox", "segm"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {gt}: 1 of 1 annotations (ids 7) have no 'segmentation'")
    assert len(error.splitlines()) == 1 and "--iou-types bbox" in error
