"""tools/predict.py on one's own images: a detector's COCO-results JSON and pictures, torchvision's label space, a
classifier's top-5, unreadable files and bad inputs."""
import json
import logging
import shutil

import pytest
import torch
from PIL import Image

from workbench.cli import prediction
from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS
from workbench.data.image_files import ImageFiles, find_images
from workbench.engine import trainer
from workbench.errors import UserError
from workbench.tasks import prediction as task_prediction
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.detection import DetectionTask

DETECTION_CONFIG = "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml"
CLASSIFICATION_CONFIG = "configs/classification/resnet18_shapes_cls.yaml"


def train(config, defaults, task, output_dir, overrides):
    trainer.run(trainer.resolve_config(defaults, config, overrides, str(output_dir)), task)
    return output_dir / "model_final.pth"


@pytest.fixture(scope="module")
def detector_checkpoint(tmp_path_factory, tiny_shapes):
    overrides = [f"data.root={tiny_shapes}", "data.batch_size=2", "data.workers=0", "model.options.min_size=64",
                 "model.options.max_size=64", "solver.max_iter=2", "solver.warmup_iters=1",
                 "train.checkpoint_period=0", "eval.draw_images=0"]
    return train(DETECTION_CONFIG, DETECTION_DEFAULTS, DetectionTask, tmp_path_factory.mktemp("det"), overrides)


@pytest.fixture
def images(tmp_path, tiny_shapes):
    """Three shapes images (one in a subfolder) and a file that is not an image."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    sources = sorted((tiny_shapes / "val").iterdir())
    for source, target in zip(sources, ["a.png", "b.png", "sub/c.png"]):
        shutil.copy(source, folder / target)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    return folder


@pytest.fixture
def run(tool_args):
    return lambda arguments: prediction.predict(tool_args("predict", arguments))


def test_detector_writes_coco_results_and_a_picture_per_image(run, detector_checkpoint, images, tmp_path, caplog):
    """The JSON holds exactly the model's detections above the threshold, as COCO results with file and category
    names and RLE masks; the unreadable file is named and counted."""
    output_dir = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        results = run(["--weights", str(detector_checkpoint), "--input", str(images), "--output-dir",
                       str(output_dir), "--score-thresh", "0.05", "--batch-size", "2"])
    assert json.loads((output_dir / "predictions.json").read_text()) == results
    assert sorted(p.name for p in output_dir.glob("*.jpg")) == ["a.jpg", "b.jpg", "sub__c.jpg"]
    assert "1 of 4 files could not be read and were skipped" in caplog.text and "broken.jpg" in caplog.text

    predictor = task_prediction.load_predictor(str(detector_checkpoint))
    files = find_images(images)
    expected = 0
    for index, image, _ in ImageFiles(files):
        if image is not None:
            output = predictor.model([image.float() / 255])[0]
            expected += int((output["scores"] >= 0.05).sum())
            mine = [r for r in results if r["image_id"] == index + 1]
            assert [r["score"] for r in mine] == pytest.approx(output["scores"][output["scores"] >= 0.05].tolist())
    assert len(results) == expected > 0
    names = dict(zip(predictor.label_to_cat_id.values(), predictor.class_names[1:]))
    for result in results:
        assert result["category_name"] == names[result["category_id"]]
        assert set(result) == {"image_id", "file_name", "category_id", "category_name", "bbox", "score",
                               "segmentation"}
        assert result["file_name"].startswith(str(images))


def test_config_and_weights_give_what_the_checkpoint_alone_gives(run, detector_checkpoint, images, tmp_path,
                                                                 tiny_shapes):
    alone = run(["--weights", str(detector_checkpoint), "--input", str(images / "a.png"), "--output-dir",
                 str(tmp_path / "alone"), "--score-thresh", "0.05"])
    with_config = run(["--config", DETECTION_CONFIG, "--weights", str(detector_checkpoint), "--input",
                       str(images / "a.png"), "--output-dir", str(tmp_path / "config"), "--score-thresh", "0.05",
                       f"data.root={tiny_shapes}", "model.options.min_size=64", "model.options.max_size=64"])
    assert with_config == alone


class CategoryIdDetector(torch.nn.Module):
    """Labels as torchvision's COCO detectors give them: category ids, one of them (12) no COCO category."""

    def forward(self, images):
        return [{"boxes": torch.tensor([[1.0, 2.0, 9.0, 8.0], [0.0, 0.0, 4.0, 4.0], [3.0, 3.0, 6.0, 6.0]]),
                 "scores": torch.tensor([0.9, 0.8, 0.3]), "labels": torch.tensor([18, 12, 1])} for _ in images]


def test_torchvision_coco_labels_get_coco_names_built_in(run, monkeypatch, images, tmp_path):
    """No annotation file at hand: COCO's names and ids are built in; label 12 ("N/A") and the detection under the
    threshold are left out."""
    monkeypatch.setattr(task_prediction, "build_model", lambda config, device: CategoryIdDetector())
    weights = tmp_path / "tv.pth"
    torch.save({"roi_heads.box_predictor.cls_score.weight": torch.zeros(91, 8)}, weights)
    results = run(["--config", "configs/mask_rcnn_r50_fpn_1x_coco.yaml", "--weights", str(weights), "--input",
                   str(images / "a.png"), "--output-dir", str(tmp_path / "out"), "model.labels_are_category_ids=true",
                   "model.num_classes=91", f"data.root={tmp_path / 'no_coco_here'}"])
    assert [(r["category_id"], r["category_name"]) for r in results] == [(18, "dog")]
    assert results[0]["bbox"] == [1.0, 2.0, 8.0, 6.0]


def test_classifier_checkpoint_gives_the_top5_classes(run, tmp_path, quick_cls_overrides, tiny_shapes_cls):
    checkpoint = train(CLASSIFICATION_CONFIG, CLASSIFICATION_DEFAULTS, ClassificationTask, tmp_path / "cls",
                       quick_cls_overrides)
    folder = tmp_path / "pictures"
    folder.mkdir()
    sources = sorted((tiny_shapes_cls / "val").rglob("*.png"))[:3]
    for index, source in enumerate(sources):
        shutil.copy(source, folder / f"{index}.png")
    Image.new("RGB", (48, 40), "red").save(folder / "other_size.png")
    results = run(["--weights", str(checkpoint), "--input", str(folder), "--output-dir", str(tmp_path / "out"),
                   "--batch-size", "4"])
    classes = sorted(p.name for p in (tiny_shapes_cls / "val").iterdir() if p.is_dir())
    assert [r["image_id"] for r in results] == [1, 2, 3, 4]
    for result in results:
        top = result["top5"]
        assert len(top) == 5 and all(c["class_name"] == classes[c["label"]] for c in top)
        probabilities = [c["probability"] for c in top]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6


def test_bad_inputs_are_named(run, detector_checkpoint, images, tmp_path):
    with pytest.raises(UserError, match="no image file, folder or glob match: .*nothing_here"):
        run(["--weights", str(detector_checkpoint), "--input", str(tmp_path / "nothing_here/*.jpg"),
             "--output-dir", str(tmp_path)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="folder .*empty holds no images"):
        run(["--weights", str(detector_checkpoint), "--input", str(empty), "--output-dir", str(tmp_path)])
    weights = tmp_path / "bare.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    with pytest.raises(UserError, match="bare.pth holds no training config .* --config"):
        run(["--weights", str(weights), "--input", str(images), "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match="--score-thresh must lie in 0..1"):
        run(["--weights", str(detector_checkpoint), "--input", str(images), "--output-dir", str(tmp_path),
             "--score-thresh", "2"])


def test_onnx_export_predicts_what_the_pytorch_detector_predicts(run, detector_checkpoint, images, tmp_path,
                                                                 tiny_shapes):
    """predict.py --onnx gives the JSON of the checkpoint (one image per call in both): boxes and scores within the
    export's tolerance, the same RLE masks; class names and category ids travel in the file."""
    from workbench.export import export_and_verify
    from workbench.export.subjects import detector_subject
    overrides = [f"data.root={tiny_shapes}", "model.options.min_size=64", "model.options.max_size=64"]
    subject = detector_subject(DETECTION_CONFIG, str(detector_checkpoint), overrides)
    onnx_file = export_and_verify(subject, tmp_path / "detector.onnx", "onnx", log=lambda text: None).path
    common = ["--input", str(images), "--score-thresh", "0.05", "--batch-size", "1"]
    from_onnx = run(["--onnx", str(onnx_file), "--output-dir", str(tmp_path / "onnx")] + common)
    from_torch = run(["--weights", str(detector_checkpoint), "--output-dir", str(tmp_path / "torch")] + common)
    assert len(from_onnx) == len(from_torch) > 0
    for mine, reference in zip(from_onnx, from_torch):
        assert "segmentation" in reference
        assert {k: v for k, v in mine.items() if k not in ("bbox", "score")} == \
            {k: v for k, v in reference.items() if k not in ("bbox", "score")}
        assert mine["bbox"] == pytest.approx(reference["bbox"], abs=1e-2)
        assert mine["score"] == pytest.approx(reference["score"], abs=1e-3)
