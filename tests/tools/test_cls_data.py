"""Classification data: CIFAR batches written in the official format, class folders and their errors, the held-out
split, the transforms and the shapes generator."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cls_data import CifarDataset, ImageFolder, build_classification_datasets, holdout_split
from cls_transforms import eval_transform, ten_crop_transform, train_transform
from make_shapes_cls import CLASSES, make_shapes_cls

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def write_pickle(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)


def cifar_batch(rng, count, labels_key, num_classes):
    return {b"batch_label": b"batch", labels_key: rng.integers(0, num_classes, count).tolist(),
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * count}


@pytest.fixture
def cifar10_root(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    batches = {name: cifar_batch(rng, 3, b"labels", 10) for name in [f"data_batch_{i}" for i in range(1, 6)]}
    batches["test_batch"] = cifar_batch(rng, 4, b"labels", 10)
    for name, content in batches.items():
        write_pickle(folder / name, content)
    write_pickle(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return tmp_path, batches


def test_cifar10_batches_are_read_as_written(cifar10_root):
    root, batches = cifar10_root
    train = CifarDataset(root, "cifar10", train=True, download=False)
    test = CifarDataset(root, "cifar10", train=False, download=False)
    assert len(train) == 15 and len(test) == 4 and train.classes == [f"c{i}" for i in range(10)]
    written = batches["data_batch_2"]
    image, label = train[4]  # the second image of the second batch
    expected = written[b"data"][1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(np.asarray(image), expected) and label == written[b"labels"][1]


def test_cifar100_uses_the_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    write_pickle(folder / "train", dict(cifar_batch(rng, 5, b"fine_labels", 100), coarse_labels=[0] * 5))
    write_pickle(folder / "test", dict(cifar_batch(rng, 2, b"fine_labels", 100), coarse_labels=[0] * 2))
    write_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [b"c"] * 20})
    train = CifarDataset(tmp_path, "cifar100", train=True, download=False)
    assert len(train.classes) == 100 and train.targets == pickle.load(open(folder / "train", "rb"))[b"fine_labels"]


def test_missing_cifar_says_where_to_put_the_files(tmp_path):
    with pytest.raises(RuntimeError, match=r"cifar-10-batches-py.*cifar-10-python.tar.gz.*extract it in"):
        CifarDataset(tmp_path, "cifar10", download=False)


def test_malformed_batch_names_the_file_and_the_key(cifar10_root):
    root, _ = cifar10_root
    write_pickle(root / "cifar-10-batches-py/test_batch", {b"labels": [1]})
    with pytest.raises(ValueError, match="test_batch is not a CIFAR batch: it has no 'data' entry"):
        CifarDataset(root, "cifar10", train=False, download=False)


def test_a_pickle_that_names_code_is_refused(cifar10_root):
    root, _ = cifar10_root
    write_pickle(root / "cifar-10-batches-py/test_batch", {b"data": print})
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load global .*print from .*test_batch"):
        CifarDataset(root, "cifar10", train=False, download=False)


def write_folder(root, classes, per_class=2, mode="RGB"):
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new(mode, (12, 10)).save(root / name / f"{i}.png")


def test_image_folder_labels_and_rgb_conversion(tmp_path):
    write_folder(tmp_path, ["b", "a"], mode="RGBA")
    write_folder(tmp_path, ["c"], per_class=1, mode="L")
    dataset = ImageFolder(tmp_path)
    assert dataset.classes == ["a", "b", "c"] and dataset.targets == [0, 0, 1, 1, 2]
    image, label = dataset[4]
    assert image.mode == "RGB" and image.size == (12, 10) and label == 2


def test_empty_class_folder_is_named(tmp_path):
    write_folder(tmp_path, ["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder .*empty has no images"):
        ImageFolder(tmp_path)


def test_corrupt_image_is_named(tmp_path):
    write_folder(tmp_path, ["a"])
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"cannot read image .*1.png"):
        ImageFolder(tmp_path)[1]


def test_train_and_val_classes_must_agree(tmp_path):
    write_folder(tmp_path / "train", ["a", "b"])
    write_folder(tmp_path / "val", ["a", "c"])
    data = dict(dataset="folder", root=str(tmp_path), train_dir="train", val_dir="val", holdout=0, seed=0)
    with pytest.raises(ValueError, match=r"different classes .*\['b', 'c'\]"):
        build_classification_datasets(data, None, None)


def test_holdout_split_is_disjoint_and_deterministic(tmp_path):
    write_folder(tmp_path, ["a", "b"], per_class=10)
    dataset = ImageFolder(tmp_path)
    kept, held = holdout_split(dataset, 5, seed=3)
    assert len(kept) == 15 and len(held) == 5 and not set(kept.indices) & set(held.indices)
    assert held.indices == holdout_split(dataset, 5, seed=3)[1].indices
    assert held.targets == [dataset.targets[i] for i in held.indices] and held.classes == ["a", "b"]
    with pytest.raises(ValueError, match="data.holdout=20"):
        holdout_split(dataset, 20, seed=0)


def gradient_image(height=20, width=24):
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = np.arange(width)[None] * 10
    pixels[..., 1] = np.arange(height)[:, None] * 10
    return Image.fromarray(pixels)


def test_training_augmentations_give_the_crop_size():
    for kind in ("pad_crop", "scale", "random_resized", "none"):
        augment = dict(kind=kind, crop=16, padding=4, scale_range=[20, 30], hflip=True)
        assert train_transform(augment, **IDENTITY)(gradient_image()).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="data.augment.kind='mixup'"):
        train_transform(dict(kind="mixup", crop=16, hflip=False), **IDENTITY)


def test_center_crop_and_ten_crop_geometry():
    image = gradient_image()
    center = eval_transform(None, 16, **IDENTITY)(image)
    assert center.shape == (3, 16, 16)
    assert round(center[0, 0, 0].item() * 255) == 40 and round(center[1, 0, 0].item() * 255) == 20  # offset (4, 2)
    crops = ten_crop_transform(None, 16, **IDENTITY)(image)
    assert crops.shape == (10, 3, 16, 16)
    assert torch.equal(crops[4], center)
    assert round(crops[1][0, 0, 0].item() * 255) == 80  # top-right corner starts at x = 24 - 16
    # TenCrop crops the flipped image: its top-left crop is the flip of the original's top-right one, and so on.
    for flipped, original in zip(range(5, 10), (1, 0, 3, 2, 4)):
        assert torch.equal(crops[flipped], crops[original].flip(-1))


def test_shapes_generator_is_deterministic_and_balanced(tmp_path):
    first, second = make_shapes_cls(tmp_path / "a", 20, 10, seed=5), make_shapes_cls(tmp_path / "b", 20, 10, seed=5)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.png")) and len(files) == 30
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    dataset = ImageFolder(first / "train")
    assert sorted(dataset.classes) == sorted(CLASSES) and np.bincount(dataset.targets).tolist() == [2] * 10
    assert dataset[0][0].size == (32, 32)
