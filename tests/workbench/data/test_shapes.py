import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from workbench.cli import shapes as cli_shapes
from workbench.data import shapes

SIZE = 64


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    shapes.make_shapes(root, 8, 4, seed=3, size=SIZE)
    return root


def load_split(root, split):
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def decoded_masks(dataset):
    """image id -> list of (annotation, bool mask)."""
    masks = {image["id"]: [] for image in dataset["images"]}
    for annotation in dataset["annotations"]:
        masks[annotation["image_id"]].append((annotation, mask_utils.decode(annotation["segmentation"]).astype(bool)))
    return masks


def objects_per_image(dataset):
    counts = {image["id"]: 0 for image in dataset["images"]}
    for annotation in dataset["annotations"]:
        counts[annotation["image_id"]] += 1
    return list(counts.values())


def test_same_arguments_give_byte_identical_files(tmp_path, shapes_root):
    shapes.make_shapes(tmp_path / "again", 8, 4, seed=3, size=SIZE)
    shapes.make_shapes(tmp_path / "other", 8, 4, seed=4, size=SIZE)
    files = sorted(p.relative_to(shapes_root) for p in shapes_root.rglob("*") if p.is_file())
    assert len(files) == 8 + 4 + 2
    for relative in files:
        assert (tmp_path / "again" / relative).read_bytes() == (shapes_root / relative).read_bytes(), relative
    first_image = Path("train") / "000000.png"
    assert (tmp_path / "other" / first_image).read_bytes() != (shapes_root / first_image).read_bytes()


def test_layout_categories_and_images(shapes_root):
    for split, count in (("train", 8), ("val", 4)):
        dataset = load_split(shapes_root, split)
        assert dataset["categories"] == [
            {"id": 1, "name": "circle", "supercategory": "shape"},
            {"id": 2, "name": "square", "supercategory": "shape"},
            {"id": 3, "name": "triangle", "supercategory": "shape"},
        ]
        assert [image["id"] for image in dataset["images"]] == list(range(1, count + 1))
        for image in dataset["images"]:
            pixels = np.asarray(Image.open(shapes_root / split / image["file_name"]))
            assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
            assert (image["width"], image["height"]) == (SIZE, SIZE)
        assert len({a["id"] for a in dataset["annotations"]}) == len(dataset["annotations"])


def test_boxes_are_tight_around_the_masks_and_areas_count_their_pixels(shapes_root):
    dataset = load_split(shapes_root, "train")
    assert dataset["annotations"]
    for objects in decoded_masks(dataset).values():
        assert 1 <= len(objects) <= 4
        for annotation, mask in objects:
            rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            tight = [columns[0], rows[0], columns[-1] - columns[0] + 1, rows[-1] - rows[0] + 1]
            assert annotation["bbox"] == [float(v) for v in tight]
            assert annotation["area"] == mask.sum()
            assert annotation["iscrowd"] == 0 and annotation["category_id"] in (1, 2, 3)
            assert isinstance(annotation["segmentation"]["counts"], str)
            assert annotation["segmentation"]["size"] == [SIZE, SIZE]


def test_masks_are_the_visible_pixels_of_the_written_images(shapes_root):
    dataset = load_split(shapes_root, "train")
    for image_id, objects in decoded_masks(dataset).items():
        index = image_id - 1
        _, drawn = shapes.draw_image(np.random.default_rng([3, 0, index]), SIZE, 1, 4)
        assert [(a["category_id"], m.tolist()) for a, m in objects] == [(c, m.tolist()) for c, m in drawn]
        pixels = np.asarray(Image.open(shapes_root / "train" / f"{index:06d}.png")).astype(np.float32)
        covered = np.zeros((SIZE, SIZE), dtype=int)
        for _, mask in objects:
            covered += mask
            colours = pixels[mask]
            assert np.abs(colours - np.median(colours, axis=0)).max() <= 6 * shapes.NOISE_STD
        assert covered.max() <= 1, "visible masks must not overlap"


def test_without_noise_every_mask_is_exactly_one_painted_colour(monkeypatch):
    monkeypatch.setattr(shapes, "NOISE_STD", 0.0)
    for index in range(6):
        image, objects = shapes.draw_image(np.random.default_rng([0, 0, index]), SIZE, 2, 4)
        for _, mask in objects:
            colours = np.unique(image[mask], axis=0)
            assert len(colours) == 1
            ring = np.zeros_like(mask)
            ring[1:] |= mask[:-1]
            ring[:-1] |= mask[1:]
            ring[:, 1:] |= mask[:, :-1]
            ring[:, :-1] |= mask[:, 1:]
            ring &= ~mask
            assert not (image[ring] == colours[0]).all(axis=1).any(), "the pixels around a mask are not its colour"


def test_occlusion_is_mild():
    fractions = []
    for index in range(40):
        rng = np.random.default_rng([1, 0, index])
        circle = shapes.shape_outline("circle", 20.0, 0.0)
        full = [shapes.rasterise(circle, np.array([32.0, 32.0]), (SIZE, SIZE))]
        visible = list(full)
        mask = shapes.place_object(rng, "square", SIZE, full, visible)
        if mask is not None:
            fractions.append((full[0] & ~mask).sum() / full[0].sum())
    assert fractions and min(fractions) >= shapes.MIN_KEPT_VISIBLE


def test_cli_writes_the_dataset_and_prints_a_summary(tmp_path, capsys, tool_args):
    args = tool_args("make_shapes", ["--out", str(tmp_path), "--num-train", "2", "--num-val", "1", "--seed", "5",
                                     "--size", "48", "--max-objects", "2"])  # --out: the old spelling of --output-dir
    summary = cli_shapes.make_shapes(args)
    assert summary["num_images"] == {"train": 2, "val": 1}
    assert summary["val_annotations"].is_file()
    assert all(1 <= n <= 2 for n in objects_per_image(load_split(tmp_path, "train")))
    assert "2 train images" in capsys.readouterr().out


@pytest.mark.parametrize("arguments", [{"min_objects": 3, "max_objects": 2}, {"size": 8}, {"num_train": -1}])
def test_bad_arguments_are_rejected(tmp_path, arguments):
    kwargs = {"num_train": 1, "num_val": 1, "seed": 0} | arguments
    with pytest.raises(ValueError):
        shapes.make_shapes(tmp_path, **kwargs)
