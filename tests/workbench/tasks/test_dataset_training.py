"""A user's torchvision-style Dataset (written as torchvision's detection tutorial writes PennFudanDataset) trains
and evaluates through the Python API, with the same AP as the same data as COCO JSON read by eval_det.py."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_util
from torchvision.ops import masks_to_boxes
from torchvision.transforms.functional import pil_to_tensor

import heads
from workbench import cli
from workbench.cli import evaluation
from workbench.data.detection_samples import DetectionSamples
from workbench.errors import UserError
from workbench.tasks.dataset_training import evaluate_detector_on, train_detector

CLASSES = ["circle", "square", "triangle"]
ID_STEP = 50  # mask pixel value = label * ID_STEP + instance number


class InstanceMaskDataset(torch.utils.data.Dataset):
    """torchvision's tutorial dataset: images, and one PNG per image whose pixel values are instance ids (here
    label * ID_STEP + instance number)."""

    def __init__(self, root: Path):
        self.root = root
        self.images = sorted((root / "images").iterdir())
        self.masks = sorted((root / "masks").iterdir())

    def __getitem__(self, index):
        image = pil_to_tensor(Image.open(self.images[index]).convert("RGB"))
        mask = torch.from_numpy(np.array(Image.open(self.masks[index])))
        ids = torch.unique(mask)[1:]
        masks = (mask == ids[:, None, None]).to(torch.uint8)
        boxes = masks_to_boxes(masks)
        boxes[:, 2:] += 1  # COCO's convention: a box covers its last pixel
        return image, {"boxes": boxes, "labels": (ids // ID_STEP).long(), "masks": masks}

    def __len__(self):
        return len(self.images)


def write_instance_masks(shapes: Path, split: str, root: Path) -> Path:
    """The shapes split `split` as an image folder and a folder of instance-id PNGs."""
    content = json.loads((shapes / "annotations" / f"instances_{split}.json").read_text())
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image in content["images"]:
        ids = np.zeros((image["height"], image["width"]), np.uint8)
        annotations = [a for a in content["annotations"] if a["image_id"] == image["id"]]
        for number, annotation in enumerate(annotations, start=1):
            ids[mask_util.decode(annotation["segmentation"]) > 0] = annotation["category_id"] * ID_STEP + number
        shutil.copy(shapes / split / image["file_name"], root / "images" / image["file_name"])
        Image.fromarray(ids).save(root / "masks" / image["file_name"])
    return root


@pytest.fixture(scope="module")
def trained(tiny_shapes, tmp_path_factory):
    root = tmp_path_factory.mktemp("own_data")
    train_set = InstanceMaskDataset(write_instance_masks(tiny_shapes, "train", root / "train"))
    val_set = InstanceMaskDataset(write_instance_masks(tiny_shapes, "val", root / "val"))
    output = root / "run"
    overrides = [f"train.output_dir={output}", "data.batch_size=2", "data.workers=0", "model.options.min_size=64",
                 "model.options.max_size=64", "solver.max_iter=6", "solver.warmup_iters=1", "train.log_period=2",
                 "train.checkpoint_period=0", "train.eval_period=3", "eval.draw_images=2"]
    return train_set, val_set, output, overrides


def test_train_and_evaluate_a_users_dataset_as_eval_det_scores_its_coco_json(trained, tiny_shapes, tool_parser,
                                                                            capfd):
    train_set, val_set, output, overrides = trained
    results = train_detector(train_set, val_set, CLASSES, config="configs/mask_rcnn_r18_fpn_shapes_cpu.yaml",
                             overrides=overrides)
    printed = capfd.readouterr().out
    counts = {name: 0 for name in CLASSES}
    for _, target in (train_set[i] for i in range(len(train_set))):
        for label in target["labels"].tolist():
            counts[CLASSES[label - 1]] += 1
    for name, count in counts.items():  # the summary's table: instances per category of the training split
        assert f"  {name:<8} {count:>8}" in printed
    assert "evaluation at iteration 3:" in printed and printed.count("per-category AP") == 2
    assert set(results) == {"bbox", "segm"}
    assert (output / "ground_truth.json").is_file() and (output / "predictions.png").is_file()

    argv = ["--config", "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml", "--weights", str(output / "model_final.pth"),
            "--output-dir", str(output / "eval_det"), f"data.root={tiny_shapes}", "model.options.min_size=64",
            "model.options.max_size=64", "data.workers=0"]
    from_coco_json = cli.run(evaluation.evaluate_detections, tool_parser("eval_det"), argv)
    assert same(from_coco_json, results)


def test_evaluate_detector_on_a_users_dataset_writes_what_eval_det_reads(trained, tool_parser, tmp_path):
    _, val_set, _, _ = trained
    torch.manual_seed(0)
    model = heads.faster_rcnn("resnet18", num_classes=4, min_size=64, max_size=64, box_score_thresh=0.0)
    results = evaluate_detector_on(model.eval(), val_set, CLASSES, tmp_path, overrides=["data.workers=0"])
    assert set(results) == {"bbox"}
    argv = ["--gt", str(tmp_path / "ground_truth.json"), "--dets", str(tmp_path / "detections.json")]
    assert same(cli.run(evaluation.evaluate_detections, tool_parser("eval_det"), argv), results)


def same(a: dict, b: dict) -> bool:
    """Equality of result dicts in which NaN (undefined AP) equals NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class Samples(torch.utils.data.Dataset):
    def __init__(self, *samples):
        self.samples = samples

    def __getitem__(self, index):
        return self.samples[index]

    def __len__(self):
        return len(self.samples)


GOOD_BOXES = torch.tensor([[1.0, 2.0, 10.0, 12.0]])


@pytest.mark.parametrize("image,target,message", [
    (torch.rand(3, 16, 16), {"boxes": GOOD_BOXES, "labels": torch.tensor([4])},
     r"dataset\[0\]: label 4 is not in 1..3"),
    (torch.rand(3, 16, 16), {"boxes": torch.tensor([[5.0, 2.0, 5.0, 12.0]]), "labels": torch.tensor([1])},
     r"dataset\[0\]: box 0 is \[5.0, 2.0, 5.0, 12.0\]; boxes must be finite"),
    (torch.rand(3, 16, 16), {"boxes": GOOD_BOXES, "labels": torch.tensor([1]),
                             "masks": torch.zeros(1, 8, 8)}, r"'masks' must be \[1, 16, 16\]"),
    (torch.rand(3, 16, 16) * 255, {"boxes": GOOD_BOXES, "labels": torch.tensor([1])}, r"values in 0-1"),
    (torch.rand(3, 16, 16), {"labels": torch.tensor([1])}, r"the target has no 'boxes'"),
    (torch.rand(16, 16), {"boxes": GOOD_BOXES, "labels": torch.tensor([1])}, r"\[C, H, W\] tensor"),
])
def test_a_bad_sample_is_named_with_what_is_wrong(image, target, message):
    with pytest.raises(UserError, match=message):
        DetectionSamples(Samples((image, target)), CLASSES, train=True)[0]


def test_samples_are_completed_and_crowd_left_out_in_training():
    image = (torch.rand(1, 16, 20) * 255).to(torch.uint8)
    target = {"boxes": [[1.0, 2.0, 10.0, 12.0], [0.0, 0.0, 4.0, 4.0]], "labels": [2, 1], "iscrowd": [0, 1]}
    evaluation_image, evaluation_target = DetectionSamples(Samples((image, target)), CLASSES, train=False)[0]
    assert evaluation_image.shape == (3, 16, 20) and evaluation_image.dtype == torch.float32
    assert evaluation_target["image_id"] == 1 and evaluation_target["area"].tolist() == [90.0, 16.0]
    _, training_target = DetectionSamples(Samples((image, target)), CLASSES, train=True)[0]
    assert training_target["labels"].tolist() == [2] and training_target["boxes"].shape == (1, 4)
