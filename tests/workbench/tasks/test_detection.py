"""Detection through the command lines of train_det.py and eval_det.py: train then evaluate, DDP (gloo, and nccl on
a GPU), AMP on a GPU, bad inputs."""
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.cli import evaluation, training
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.engine import trainer
from workbench.tasks import detection_evaluation
from workbench.tasks.detection import DetectionTask

ENV = dict(os.environ, PYTHONPATH=".")
CONFIG = "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml"


def train(config, output_dir, overrides, resume=False):
    return trainer.run(trainer.resolve_config(DETECTION_DEFAULTS, config, overrides, str(output_dir)), DetectionTask,
                       resume)


@pytest.mark.parametrize("kind, neck", [("mask_rcnn", "fpn"), ("faster_rcnn", "c4")])
def test_train_then_evaluate_through_the_cli(tmp_path, quick_overrides, kind, neck, tool_args):
    options = ["model.options.fpn_channels=null", "model.options.representation_size=null",
               "model.options.mask_head_convs=null", "model.options.anchor_sizes=null",
               "model.options.mask_head_channels=null", "model.options.box_head=null"] if neck == "c4" else []
    overrides = quick_overrides + [f"model.kind={kind}", f"model.neck={neck}"] + options
    results = train("configs/mask_rcnn_r18_fpn_shapes_cpu.yaml", tmp_path, overrides)
    expected_types = {"bbox", "segm"} if kind == "mask_rcnn" else {"bbox"}
    assert set(results) == expected_types and len(results["bbox"]["stats"]) == 12
    for name in ("model_final.pth", "metrics.jsonl", "loss_curve.png", "predictions.png", "eval_results.json",
                 "config.yaml"):
        assert (tmp_path / name).is_file(), name
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r] == [1, 2, 3]

    args = tool_args("eval_det", [
        "--config", "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml", "--weights", str(tmp_path / "model_final.pth"),
        "--output-dir", str(tmp_path / "eval")] + overrides)
    assert same(evaluation.evaluate_detections(args), results)
    args = tool_args("eval_det", [
        "--gt", str(Path(quick_overrides[0].split("=", 1)[1]) / "annotations/instances_val.json"),
        "--dets", str(tmp_path / "detections.json"), "--iou-types", *sorted(expected_types)])
    assert same(evaluation.evaluate_detections(args), results)


def same(a: dict, b: dict) -> bool:
    """Equality of result dicts in which NaN (undefined AP) equals NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.slow
def test_two_process_gloo_ddp_run(tmp_path, quick_overrides, free_port):
    overrides = quick_overrides + ["solver.max_iter=2", "eval.draw_images=0", "data.batch_size=2"]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
         "tools/train_det.py", "--config", "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml",
         "--output-dir", str(tmp_path)] + overrides, env=dict(ENV, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "model_final.pth").is_file() and "AP" in result.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_amp_training_with_clipping_on_the_gpu(tmp_path, quick_overrides):
    overrides = quick_overrides + ["train.device=cuda", "solver.amp=true", "solver.clip_grad_norm=1.0",
                                   "solver.max_iter=4", "train.checkpoint_period=2", "eval.draw_images=0"]
    train(CONFIG, tmp_path, overrides)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in records if "loss" in record]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses)
    assert (tmp_path / "checkpoint_0000002.pth").is_file()
    final = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert final["iteration"] == 4 and final["scaler"]["scale"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_one_gpu_nccl_ddp_run(tmp_path, quick_overrides, free_port):
    overrides = quick_overrides + ["train.device=cuda", "solver.amp=true", "solver.max_iter=2", "eval.draw_images=0"]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(free_port),
         "tools/train_det.py", "--config", CONFIG, "--output-dir", str(tmp_path)] + overrides,
        env=dict(ENV, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "AP" in result.stdout
    state = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert state["iteration"] == 2 and not any(key.startswith("module.") for key in state["model"])


def test_unknown_config_key_is_named(tmp_path, quick_overrides):
    with pytest.raises(ValueError, match="unknown config key 'solver.learning_rate'.*did you mean"):
        train("configs/mask_rcnn_r18_fpn_shapes_cpu.yaml", tmp_path, quick_overrides + ["solver.learning_rate=1"])


def test_class_count_mismatch_is_named(tmp_path, quick_overrides):
    with pytest.raises(ValueError, match="model.num_classes=5 .* set model.num_classes=4"):
        train("configs/mask_rcnn_r18_fpn_shapes_cpu.yaml", tmp_path, quick_overrides + ["model.num_classes=5"])


def test_a_corrupt_image_stops_training_or_is_skipped_with_a_warning(tmp_path, tiny_shapes, quick_overrides, caplog):
    broken = tmp_path / "shapes"
    subprocess.run(["cp", "-r", str(tiny_shapes), str(broken)], check=True)
    victim = sorted((broken / "train").iterdir())[0]
    victim.write_bytes(b"not a png")
    overrides = [o for o in quick_overrides if not o.startswith("data.root")] + [f"data.root={broken}"]
    with pytest.raises(OSError, match=victim.name):
        train(CONFIG, tmp_path / "stop", overrides + ["solver.max_iter=8", "data.unreadable_images=stop"])
    with caplog.at_level(logging.WARNING, logger="workbench.data.images"):
        train(CONFIG, tmp_path / "skip", overrides + ["solver.max_iter=8"])
    assert any(victim.name in record.getMessage() for record in caplog.records)


@pytest.mark.slow
def test_an_image_that_fails_in_a_loader_worker_is_one_line_naming_it(tmp_path, tiny_shapes, quick_overrides):
    broken = tmp_path / "shapes"
    subprocess.run(["cp", "-r", str(tiny_shapes), str(broken)], check=True)
    for image in (broken / "train").iterdir():
        image.write_bytes(b"")
    overrides = [o for o in quick_overrides if not o.startswith(("data.root", "data.workers"))]
    result = subprocess.run([sys.executable, "tools/train_det.py", "--config", CONFIG, "--output-dir",
                             str(tmp_path / "out"), *overrides, f"data.root={broken}", "data.workers=1",
                             "data.unreadable_images=stop"], capture_output=True, text=True, env=ENV)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: cannot read image id \d+ from .*\.png: .*", last) and "Traceback" not in result.stderr


def test_print_config_shows_the_merged_config(capsys):
    args = training.args_parser("", "").parse_args(
        ["--config", "configs/faster_rcnn_r101_c4_coco.yaml", "--print-config", "solver.lr=0.005"])
    training.train(args, DETECTION_DEFAULTS, DetectionTask)
    printed = capsys.readouterr().out
    assert "neck: c4" in printed and "lr: 0.005" in printed and "backbone: resnet101.msra_in1k" in printed


COCO_IDS = {1: "person", 18: "dog", 90: "toothbrush"}  # COCO category ids, as torchvision's 91 outputs index them


class CategoryIdDetector(torch.nn.Module):
    """A detector whose outputs are known: each image's ground-truth box, labelled with its category id (as
    torchvision's COCO detectors label), plus one detection of id 12, which is no COCO category ("N/A")."""

    def __init__(self, answers: dict[tuple[int, int], tuple[list[float], int]]):
        super().__init__()
        self.answers = answers  # (height, width) -> (box x1 y1 x2 y2, category id)

    def forward(self, images):
        outputs = []
        for image in images:
            box, category_id = self.answers[tuple(image.shape[-2:])]
            outputs.append({"boxes": torch.tensor([box, [0.0, 0.0, 5.0, 5.0]]), "scores": torch.tensor([0.9, 0.8]),
                            "labels": torch.tensor([category_id, 12])})
        return outputs


def write_category_id_set(root: Path) -> tuple[Path, dict]:
    """Three images of different sizes, one object each, categories with COCO's ids; returns the detection config
    and the known detector's answers."""
    from PIL import Image
    (root / "images").mkdir(parents=True)
    images, annotations, answers = [], [], {}
    for index, category_id in enumerate(COCO_IDS, start=1):
        height, width = 40 + 8 * index, 48 + 4 * index
        Image.new("RGB", (width, height), (40 * index, 90, 120)).save(root / "images" / f"{index}.png")
        box = [4.0 * index, 6.0, 20.0, 18.0]
        images.append({"id": index, "file_name": f"{index}.png", "height": height, "width": width})
        annotations.append({"id": index, "image_id": index, "category_id": category_id, "bbox": box,
                            "area": box[2] * box[3], "iscrowd": 0})
        answers[(height, width)] = ([box[0], box[1], box[0] + box[2], box[1] + box[3]], category_id)
    categories = [{"id": cat_id, "name": name} for cat_id, name in COCO_IDS.items()]
    (root / "instances.json").write_text(json.dumps(dict(images=images, annotations=annotations,
                                                         categories=categories)))
    config = root / "config.yaml"
    config.write_text(f"model: {{kind: faster_rcnn, backbone: resnet18, num_classes: 91}}\n"
                      f"data: {{dataset: coco, root: {root}, train_images: images, val_images: images, "
                      f"train_annotations: instances.json, val_annotations: instances.json, workers: 0}}\n"
                      "train: {device: cpu}\n")
    return config, answers


def test_eval_det_scores_a_detector_whose_labels_are_category_ids(tmp_path, monkeypatch, caplog):
    """torchvision's COCO checkpoints label by COCO category id (91 outputs): with
    model.labels_are_category_ids=true their detections score as they are, those of ids that are no category are
    left out with a warning; without it, the command says which option fits."""
    config, answers = write_category_id_set(tmp_path / "data")
    monkeypatch.setattr(detection_evaluation, "build_model", lambda config, device: CategoryIdDetector(answers))
    weights = tmp_path / "weights.pth"
    torch.save({"module.roi_heads.box_predictor.cls_score.weight": torch.zeros(91, 8)}, weights)  # saved from DDP
    with caplog.at_level(logging.WARNING):
        results = detection_evaluation.evaluate_model(str(config), str(weights), ["model.labels_are_category_ids=true"],
                                                      output_dir=str(tmp_path / "eval"))
    assert results["bbox"]["stats"]["AP"] == pytest.approx(1.0)
    assert {d["category_id"] for d in json.loads((tmp_path / "eval/detections.json").read_text())} == set(COCO_IDS)
    assert "3 detections had labels that are no category id" in caplog.text

    with pytest.raises(ValueError, match="model.num_classes=91 but .*instances.json has 3 categories; .*"
                                         "model.labels_are_category_ids=true"):
        detection_evaluation.evaluate_model(str(config), str(weights))
    with pytest.raises(ValueError, match="weights.pth has 91 class outputs .* but model.num_classes=81, so its trained "
                                         "predictor would be dropped; set model.num_classes=91 and "
                                         "model.labels_are_category_ids=true"):
        detection_evaluation.evaluate_model(str(config), str(weights), ["model.num_classes=81"])
