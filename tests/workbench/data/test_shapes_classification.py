"""The shapes classification generator: byte-identical output for the same arguments, balanced class folders, the
image size and the completion marker."""
import numpy as np
import pytest
from PIL import Image

from workbench.data.shapes_classification import CLASSES, MARKER, make_shapes_cls


def png_files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*.png"))


def test_same_arguments_give_the_same_bytes(tmp_path):
    first, second = make_shapes_cls(tmp_path / "a", 20, 10, seed=5), make_shapes_cls(tmp_path / "b", 20, 10, seed=5)
    files = png_files(first)
    assert files == png_files(second) and len(files) == 30
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    other = make_shapes_cls(tmp_path / "c", 20, 10, seed=6)
    assert any((first / f).read_bytes() != (other / f).read_bytes() for f in files)


def test_class_folders_are_balanced_and_marked_complete(tmp_path):
    root = make_shapes_cls(tmp_path, 20, 10, size=24)
    for split, per_class in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(CLASSES)
        assert all(len(list((root / split / name).glob("*.png"))) == per_class for name in CLASSES)
    assert (root / MARKER).read_text().split() == list(CLASSES)
    image = Image.open(root / "train" / CLASSES[3] / "000003.png")
    assert image.size == (24, 24) and image.mode == "RGB"
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 10  # a textured background, not a flat one


def test_the_easier_set_has_a_plain_background_and_large_shapes(tmp_path):
    root = make_shapes_cls(tmp_path, 10, 10, size=32, background="plain", extent=(0.8, 0.9))
    pixels = np.asarray(Image.open(root / "train" / "circle" / "000000.png")).astype(float)
    corner = pixels[:3, :3].reshape(-1, 3)  # background only: a circle of >= 80% of the side never reaches it
    assert np.abs(corner - corner.mean(axis=0)).max() < 4 * 3  # one colour plus the pixel noise
    centre = pixels[14:18, 14:18].reshape(-1, 3)
    assert np.linalg.norm(centre.mean(axis=0) - corner.mean(axis=0)) > 50  # the shape covers the centre


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 10 images per split.*num_val=5"):
        make_shapes_cls(tmp_path, 20, 5)
    with pytest.raises(ValueError, match="size must be >= 16 pixels, got 8"):
        make_shapes_cls(tmp_path, 20, 10, size=8)
    assert not (tmp_path / MARKER).exists()
    with pytest.raises(ValueError, match="background='noisy' is not supported; choose one of textured, plain"):
        make_shapes_cls(tmp_path, 20, 10, background="noisy")
    with pytest.raises(ValueError, match=r"extent=\[0.9, 0.5\] is impossible; expected \[low, high\]"):
        make_shapes_cls(tmp_path, 20, 10, extent=(0.9, 0.5))
