"""Classification data: CIFAR batches written in the official format, class folders and their errors, the held-out
split and the transforms."""
import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.config import CLASSIFICATION_DEFAULTS
from workbench.data.classification import (
    CifarDataset,
    ImageFolder,
    build_classification_datasets,
    collate_readable,
    holdout_split,
)
from workbench.data.classification_transforms import eval_transform, ten_crop_transform, train_transform

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB")


class Python2Pickler(pickle.Pickler):
    """Pickles like the official files (Python 2 cPickle): text keys, and arrays whose raw bytes are a str (which
    reads back as latin-1 text)."""

    def reducer_override(self, obj):
        if not isinstance(obj, np.ndarray):
            return NotImplemented
        function, arguments, state = obj.__reduce__()
        return function, arguments, state[:-1] + (state[-1].decode("latin1"),)


def write_pickle(path, content, python2=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if python2:
        content = {key.decode(): [v.decode() for v in value] if key.endswith(b"names") else value
                   for key, value in content.items()}
    with open(path, "wb") as f:
        (Python2Pickler if python2 else pickle.Pickler)(f, protocol=2).dump(content)


def cifar_batch(rng, count, labels_key, num_classes):
    return {labels_key: rng.integers(0, num_classes, count).tolist(),
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8)}


@pytest.fixture(params=[False, True], ids=["bytes_keys", "python2_text_keys"])
def cifar10_root(tmp_path, request):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    batches = {name: cifar_batch(rng, 3, b"labels", 10) for name in [f"data_batch_{i}" for i in range(1, 6)]}
    batches["test_batch"] = cifar_batch(rng, 4, b"labels", 10)
    for name, content in batches.items():
        write_pickle(folder / name, content, python2=request.param)
    write_pickle(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]},
                 python2=request.param)
    return tmp_path, batches


def offline(url, root, md5):
    raise OSError("network unreachable")


def test_cifar10_batches_are_read_as_written(cifar10_root, monkeypatch):
    root, batches = cifar10_root
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    train = CifarDataset(root, "cifar10", train=True, download=False)
    test = CifarDataset(root, "cifar10", train=False, download=True)  # the files are there: nothing is downloaded
    assert len(train) == 15 and len(test) == 4 and train.classes == [f"c{i}" for i in range(10)]
    written = batches["data_batch_2"]
    image, label = train[4]  # the second image of the second batch
    expected = written[b"data"][1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(np.asarray(image), expected) and label == written[b"labels"][1]


def test_cifar100_uses_the_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    written = dict(cifar_batch(rng, 5, b"fine_labels", 100), coarse_labels=[0] * 5)
    write_pickle(folder / "train", written)
    write_pickle(folder / "test", dict(cifar_batch(rng, 2, b"fine_labels", 100), coarse_labels=[0] * 2))
    write_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [b"c"] * 20})
    train = CifarDataset(tmp_path, "cifar100", train=True, download=False)
    assert len(train.classes) == 100 and train.classes[7] == "f7" and train.targets == written[b"fine_labels"]


def test_missing_cifar_says_where_to_put_the_files(tmp_path):
    with pytest.raises(RuntimeError, match=r"cifar-10-batches-py.*cifar-10-python.tar.gz.*extract it in.*"
                                           r"data.download=false"):
        CifarDataset(tmp_path, "cifar10", download=False)


def test_failed_download_says_why_and_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(RuntimeError, match=r"cifar-100-python/test.*cifar-100-python.tar.gz.*downloading failed: "
                                           r"network unreachable"):
        CifarDataset(tmp_path, "cifar100", train=False, download=True)


def test_labels_outside_the_classes_are_refused(cifar10_root):
    root, _ = cifar10_root
    write_pickle(root / "cifar-10-batches-py/test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]})
    with pytest.raises(ValueError, match=r"test_batch: 'labels' must lie in 0..9 .*got 3..10"):
        CifarDataset(root, "cifar10", train=False, download=False)


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
    write_folder(tmp_path, ["d"], per_class=1, mode="P")
    dataset = ImageFolder(tmp_path)
    assert dataset.classes == ["a", "b", "c", "d"] and dataset.targets == [0, 0, 1, 1, 2, 3]
    assert all(image.mode == "RGB" and image.size == (12, 10) for image, _ in dataset) and dataset[4][1] == 2


def test_exif_orientation_is_applied(tmp_path):
    (tmp_path / "a").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, to be shown rotated by 90 degrees
    Image.new("RGB", (12, 10)).save(tmp_path / "a" / "0.JPG", exif=exif.tobytes())
    assert ImageFolder(tmp_path)[0][0].size == (10, 12)


def test_missing_root_and_missing_class_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"image folder not found: .*nowhere"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has no class folders"):
        ImageFolder(tmp_path)


def test_empty_class_folder_is_named(tmp_path):
    write_folder(tmp_path, ["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder .*empty has no images"):
        ImageFolder(tmp_path)


def test_a_corrupt_image_stops_or_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    write_folder(tmp_path, ["a", "b"])
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"cannot read image .*1.png"):
        ImageFolder(tmp_path, unreadable_images="stop")[1]
    with caplog.at_level(logging.WARNING):
        assert ImageFolder(tmp_path)[1][1] == 1, "in training the next readable image takes its place"
        evaluation = ImageFolder(tmp_path, transform=lambda image: torch.zeros(1), train=False)
        images, labels = collate_readable([evaluation[i] for i in range(4)])
    assert labels.tolist() == [0, 1, 1] and collate_readable([None]) is None
    assert sum("a/1.png" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records) == 2


def test_train_and_val_classes_must_agree(tmp_path):
    write_folder(tmp_path / "train", ["a", "b"])
    write_folder(tmp_path / "val", ["a", "c"])
    data = dict(CLASSIFICATION_DEFAULTS["data"], dataset="folder", root=str(tmp_path), holdout=0)
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


def test_holdout_reads_the_training_set_once_and_applies_both_transforms(tmp_path):
    write_folder(tmp_path / "train", ["a", "b"], per_class=5)
    data = dict(CLASSIFICATION_DEFAULTS["data"], dataset="folder", root=str(tmp_path), val_dir="absent", holdout=3,
                seed=1)
    train_set, val_set = build_classification_datasets(data, lambda image: "train", lambda image: "val")
    assert len(train_set) == 7 and len(val_set) == 3 and not set(train_set.indices) & set(val_set.indices)
    assert train_set.dataset.samples is val_set.dataset.samples and train_set.classes == val_set.classes == ["a", "b"]
    assert {image for image, _ in train_set} == {"train"} and {image for image, _ in val_set} == {"val"}


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


def test_every_transform_flips_rgb_to_bgr_before_normalising():
    image = gradient_image(16, 16)  # red grows along x, green along y, blue is 0
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    rgb = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    expected = (rgb.flip(0) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    unchanged = dict(kind="none", crop=16, hflip=False)
    outputs = {"train": train_transform(unchanged, mean, std, "BGR")(image),
               "eval": eval_transform(None, None, mean, std, "BGR")(image),
               "ten-crop": ten_crop_transform(None, 16, mean, std, "BGR")(image)[4]}
    for name, output in outputs.items():
        torch.testing.assert_close(output, expected, msg=name)



def test_a_planted_cifar_batch_is_refused_and_its_code_does_not_run(cifar10_root, planted_payload):
    root, batches = cifar10_root
    marker = root / "pwned"
    write_pickle(root / "cifar-10-batches-py/data_batch_3",
                 dict(batches["data_batch_3"], payload=planted_payload(marker)))
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_3"):
        CifarDataset(root, "cifar10", train=True, download=False)
    assert not marker.exists()
