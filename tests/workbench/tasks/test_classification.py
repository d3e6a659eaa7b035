"""Classification through the command lines of train_cls.py and eval_cls.py: train, evaluate (center and 10-crop),
resume, hand-off of the checkpoint to detection and to create_backbone, bad inputs."""
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import backbones
import heads
from backbones.pretrained import PRETRAINED_CFGS
from tests.backbones.weight_files import randomised, save_pickle, to_caffe2
from workbench.cli import evaluation
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.data import classification_transforms
from workbench.data.classification_transforms import ten_crop_transform
from workbench.engine import checkpoints, trainer
from workbench.evaluation.classifier import evaluate_classifier
from workbench.tasks.classification import ClassificationTask, eval_sizes

CONFIG = "configs/classification/resnet18_shapes_cls.yaml"
MSRA = "resnet50.msra_in1k"
PRETRAINED_EVAL = dict(CLASSIFICATION_DEFAULTS["data"], eval_crop="pretrained")


def train(output_dir, overrides, resume=False):
    config = trainer.resolve_config(CLASSIFICATION_DEFAULTS, CONFIG, overrides, str(output_dir))
    return trainer.run(config, ClassificationTask, resume)


@pytest.fixture
def evaluate(tool_args):
    """eval_cls.py's evaluation of a command line."""
    return lambda arguments: evaluation.evaluate_classifier(tool_args("eval_cls", arguments))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, quick_cls_overrides):
    output_dir = tmp_path_factory.mktemp("cls")
    return output_dir, train(output_dir, quick_cls_overrides)


def test_train_then_evaluate_through_the_cli(trained, quick_cls_overrides, tmp_path, evaluate):
    output_dir, results = trained
    assert set(results) == {"top1", "top5", "loss"} and 0 <= results["top1"] <= results["top5"] <= 100
    for name in ("model_final.pth", "metrics.jsonl", "training_curves.png", "confusion_matrix.png",
                 "eval_results.json", "config.yaml"):
        assert (output_dir / name).is_file(), name
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "train/top1" in r] == [1, 2, 3]
    assert records[-1]["val/top1"] == pytest.approx(results["top1"])

    from_checkpoint = evaluate(["--checkpoint", str(output_dir / "model_final.pth"), "--output-dir", str(tmp_path)])
    assert from_checkpoint["top1"] == pytest.approx(results["top1"])
    assert from_checkpoint["images"] == sum(row["images"] for row in from_checkpoint["per_class"])
    plain_weights = tmp_path / "weights.pth"
    torch.save(torch.load(output_dir / "model_final.pth", weights_only=True)["model"], plain_weights)
    from_weights = evaluate(["--config", CONFIG, "--weights", str(plain_weights), "--output-dir", str(tmp_path)]
                            + quick_cls_overrides)
    assert from_weights["top1"] == pytest.approx(results["top1"])
    assert from_weights["confusion"] == from_checkpoint["confusion"]


def test_ten_crop_cli_writes_its_own_results(trained, tmp_path, evaluate):
    output_dir, _ = trained
    results = evaluate(["--checkpoint", str(output_dir / "model_final.pth"), "--ten-crop", "--output-dir",
                        str(tmp_path), "data.eval_resize=32", "data.eval_crop=28"])
    assert (tmp_path / "eval_results_10crop.json").is_file() and (tmp_path / "confusion_matrix_10crop.png").is_file()
    assert 0 <= results["top1"] <= 100


def test_ten_crop_averages_the_softmax_of_corners_center_and_flips():
    torch.manual_seed(0)
    model = backbones.create_backbone("resnet20_cifar", num_classes=4).eval()
    images = [Image.fromarray(torch.randint(0, 256, (20, 24, 3), dtype=torch.uint8).numpy()) for _ in range(3)]
    labels = [0, 3, 1]
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)

    class Images(torch.utils.data.Dataset):
        classes = ["a", "b", "c", "d"]

        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            return ten_crop_transform(None, 16, mean, std, "RGB")(images[index]), labels[index]

    results = evaluate_classifier(model, Images(), torch.device("cpu"), batch_size=2)

    expected_probabilities = []
    for image in images:
        pixels = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
                  - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        height, width = pixels.shape[1:]
        corners = [(0, 0), (0, width - 16), (height - 16, 0), (height - 16, width - 16),
                   ((height - 16) // 2, (width - 16) // 2)]
        crops = [pixels[:, top:top + 16, left:left + 16] for top, left in corners]
        crops += [crop.flip(-1) for crop in crops]
        with torch.no_grad():
            expected_probabilities.append(model(torch.stack(crops)).softmax(1).mean(0))
    expected = torch.stack(expected_probabilities)
    targets = torch.tensor(labels)
    assert results["top1"] == pytest.approx(100 * (expected.argmax(1) == targets).float().mean().item())
    assert results["loss"] == pytest.approx(-expected[torch.arange(3), targets].log().mean().item(), rel=1e-4)


class MsraReference(torch.utils.data.Dataset):
    """The 56 px center crops of 64 px images as MSRA's Caffe weights take them, written independently of the code
    under test: BGR pixels in 0-1, the tag's mean subtracted and divided by its std (0-1 units: a std of 1/255 is
    Caffe's mean subtraction on 0-255 pixels)."""

    classes = ["a", "b"]

    def __init__(self, root):
        self.paths = sorted((root / "val").glob("*/*.png"))
        cfg = PRETRAINED_CFGS["resnet50"]["msra_in1k"]
        self.mean, self.std = (torch.tensor(cfg[key])[:, None, None] for key in ("mean", "std"))

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        pixels = torch.from_numpy(np.array(Image.open(self.paths[index]))).permute(2, 0, 1).float()[:, 4:60, 4:60]
        return (pixels.flip(0) / 255 - self.mean) / self.std, self.classes.index(self.paths[index].parent.name)


@pytest.fixture(scope="module")
def msra_classifier(tmp_path_factory):
    """An image folder of 2 classes x 3 random 64 px images, and an MSRA-layout (Caffe2 names) file of a random
    caffe-style 2-class ResNet-50 with random BatchNorm statistics, its head centred on those images so that the
    predictions vary and the softmax does not saturate."""
    root = tmp_path_factory.mktemp("msra")
    generator = np.random.default_rng(0)
    for name in MsraReference.classes:
        folder = root / "val" / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(generator.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    torch.manual_seed(0)
    model = randomised(backbones.create_backbone(MSRA, num_classes=2))
    inputs = torch.stack([image for image, _ in MsraReference(root)])
    with torch.no_grad():
        model.conv1.weight /= 255  # weights for 0-255 pixels are that much smaller than for 0-1 ones
        model.fc.bias -= model(inputs).mean(0)
    return root, save_pickle(to_caffe2(model.state_dict()), root / "R-50.pkl")


@pytest.mark.parametrize("named", [[f"model.backbone={MSRA}"], []], ids=["tag named", "file alone"])
def test_eval_cls_scores_msra_weights_as_the_library_with_the_tags_normalisation(msra_classifier, evaluate, tmp_path,
                                                                                 monkeypatch, named):
    """With the tag named, or with the config's plain resnet50: the file's format gives the tag's conventions."""
    root, weights = msra_classifier
    model = backbones.create_backbone(MSRA, pretrained=weights, num_classes=2)
    expected = evaluate_classifier(model, MsraReference(root), torch.device("cpu"), batch_size=6)
    assert all(sum(column) for column in zip(*expected["confusion"]))  # both classes are predicted
    arguments = ["--config", "configs/classification/resnet50_imagenet.yaml", "--weights", weights, "--output-dir",
                 str(tmp_path), *named, "model.num_classes=2", f"data.root={root}", "data.eval_resize=64",
                 "data.eval_crop=56", "data.workers=0", "eval.batch_size=6", "train.device=cpu"]
    results = evaluate(arguments)
    assert results["top1"] == expected["top1"] and results["confusion"] == expected["confusion"]
    assert results["loss"] == pytest.approx(expected["loss"], rel=1e-3)  # 0-255 vs 0-1 arithmetic: 4e-5 apart
    monkeypatch.setattr(classification_transforms, "to_bgr", lambda image: image)  # RGB fed as it comes
    assert evaluate(arguments)["loss"] != pytest.approx(expected["loss"], rel=1e-2)


@pytest.mark.parametrize("name, sizes", [
    ("resnet50.tv2_in1k", (232, 224)), ("resnext101_64x4d.tv_in1k", (232, 224)), ("resnet50.tv_in1k", (256, 224)),
])
def test_pretrained_eval_sizes_are_the_tags_test_sizes(name, sizes):
    with torch.device("meta"):
        assert eval_sizes(PRETRAINED_EVAL, backbones.create_backbone(name)) == sizes


def test_pretrained_eval_sizes_of_every_torchvision_tag_are_torchvisions():
    presets = {weights.url: weights.transforms() for name in torchvision.models.list_models(module=torchvision.models)
               for weights in torchvision.models.get_model_weights(name)}
    expected, got = {}, {}
    for name in backbones.list_backbones(pretrained=True):
        with torch.device("meta"):
            model = backbones.create_backbone(name)
        if model.pretrained_cfg["source"] == "torchvision":
            preset = presets[model.pretrained_cfg["url"]]
            expected[name] = (*preset.resize_size, *preset.crop_size)
            got[name] = eval_sizes(PRETRAINED_EVAL, model)
    assert got == expected and {"resnet50.tv2_in1k", "resnext101_64x4d.tv_in1k", "resnet50.tv_in1k"} <= set(got)


def test_resume_continues_exactly(tmp_path, quick_cls_overrides):
    """A data-loading worker draws the images, so the main process's generators serve dropout alone: the resumed
    run's dropout masks are the uninterrupted run's only if the checkpoint's generator states are restored."""
    overrides = quick_cls_overrides + ["solver.max_iter=4", "train.checkpoint_period=2", "data.workers=1",
                                       "model.options.drop_rate=0.5"]
    train(tmp_path / "whole", overrides)
    shutil.copytree(tmp_path / "whole", tmp_path / "parts")
    (tmp_path / "parts/model_final.pth").unlink()
    (tmp_path / "parts/last_checkpoint").write_text("checkpoint_0000002.pth")  # as if stopped at iteration 2
    train(tmp_path / "parts", overrides, resume=True)
    whole = torch.load(tmp_path / "whole/model_final.pth", weights_only=True)
    resumed = torch.load(tmp_path / "parts/model_final.pth", weights_only=True)
    assert resumed["iteration"] == whole["iteration"] == 4
    for key, value in whole["model"].items():
        assert torch.equal(resumed["model"][key], value), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_run_without_amp_resumes_with_amp_on_the_gpu(tmp_path, quick_cls_overrides):
    overrides = quick_cls_overrides + ["train.device=cuda", "solver.amp=false", "solver.max_iter=2"]
    train(tmp_path, overrides)
    train(tmp_path, overrides + ["solver.amp=true", "solver.max_iter=4"], resume=True)
    resumed = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert resumed["iteration"] == 4 and resumed["scaler"]["scale"] > 0


def test_classification_checkpoint_feeds_detection_and_create_backbone(trained):
    output_dir, _ = trained
    checkpoint = output_dir / "model_final.pth"
    trained_weights = torch.load(checkpoint, weights_only=True)["model"]
    backbone = backbones.create_backbone("resnet18", pretrained=str(checkpoint), num_classes=10)
    for key, value in backbone.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, trained_weights[key], msg=key)
    detector = heads.mask_rcnn("resnet18", num_classes=4, backbone_weights=str(checkpoint))
    body = detector.backbone.body.state_dict()
    for key in ("conv1.weight", "layer3.1.conv2.weight", "layer4.0.bn1.running_var"):
        torch.testing.assert_close(body[key], trained_weights[key], msg=key)


def test_grad_checkpointing_trains_the_same_weights_and_checkpoints_kept_prunes(trained, quick_cls_overrides, tmp_path):
    output_dir, _ = trained
    train(tmp_path, quick_cls_overrides + ["train.grad_checkpointing=true", "train.checkpoint_period=1",
                                           "train.checkpoints_kept=2"])
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "checkpoint_0000002.pth", "checkpoint_0000003.pth", "model_final.pth"]
    expected = torch.load(output_dir / "model_final.pth", weights_only=True)["model"]
    got = torch.load(tmp_path / "model_final.pth", weights_only=True)["model"]
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, msg=key)


def test_grad_checkpointing_reaches_a_detector_backbone_and_is_refused_where_nothing_offers_it():
    detector = heads.faster_rcnn("resnet18", num_classes=3)
    trainer.enable_grad_checkpointing(detector)
    assert detector.backbone.body.grad_checkpointing
    with pytest.raises(ValueError, match=r"train.grad_checkpointing=true, but no part of the Linear offers "
                                         r"set_grad_checkpointing; set it to false"):
        trainer.enable_grad_checkpointing(torch.nn.Linear(2, 2))


def test_a_folder_another_run_writes_into_is_refused_before_any_work(tmp_path, quick_cls_overrides):
    held = checkpoints.lock_output_dir(tmp_path)
    with pytest.raises(ValueError, match=r"another run \(process \d+\) is writing into"):
        train(tmp_path, quick_cls_overrides)
    held.close()
    assert not (tmp_path / "config.yaml").exists()


def test_class_count_mismatch_is_named(tmp_path, quick_cls_overrides):
    with pytest.raises(ValueError, match="model.num_classes=7 .* has 10 classes; set model.num_classes=10"):
        train(tmp_path, quick_cls_overrides + ["model.num_classes=7"])


def test_a_corrupt_image_stops_training_or_is_skipped_with_a_warning(tmp_path, tiny_shapes_cls, quick_cls_overrides,
                                                                     caplog):
    broken = tmp_path / "shapes"
    shutil.copytree(tiny_shapes_cls, broken)
    victim = sorted((broken / "train").rglob("*.png"))[0]
    victim.write_bytes(b"not a png")
    overrides = [o for o in quick_cls_overrides if not o.startswith("data.root")] + [f"data.root={broken}",
                                                                                      "data.workers=0"]
    with pytest.raises(ValueError, match=victim.name):
        train(tmp_path / "stop", overrides + ["solver.max_iter=20", "data.unreadable_images=stop"])
    with caplog.at_level(logging.WARNING, logger="workbench.data.images"):
        train(tmp_path / "skip", overrides + ["solver.max_iter=20"])
    assert any(victim.name in record.getMessage() for record in caplog.records)


@pytest.mark.slow
def test_two_process_gloo_ddp_run(tmp_path, quick_cls_overrides, free_port):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
         "tools/train_cls.py", "--config", CONFIG, "--output-dir", str(tmp_path)] + quick_cls_overrides
        + ["solver.max_iter=2", "data.batch_size=8", "solver.sync_bn=true"],
        env=dict(os.environ, PYTHONPATH=".", OMP_NUM_THREADS="1"), capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "solver.sync_bn ignored: torch's SyncBatchNorm needs CUDA" in result.stderr
    evaluated = json.loads((tmp_path / "eval_results.json").read_text())
    assert evaluated["images"] == 20  # both ranks' shares of the validation set, gathered


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_sync_bn_in_a_one_process_nccl_run(tmp_path, quick_cls_overrides, free_port):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(free_port),
         "tools/train_cls.py", "--config", CONFIG, "--output-dir", str(tmp_path)] + quick_cls_overrides
        + ["solver.max_iter=2", "train.device=cuda", "solver.sync_bn=true", "solver.amp=true"],
        env=dict(os.environ, PYTHONPATH=".", OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sync_bn ignored" not in result.stderr
    state = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert state["iteration"] == 2 and not any(key.startswith("module.") for key in state["model"])
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())
