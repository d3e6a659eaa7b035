"""What the converters share: image sizes from headers (EXIF orientation applied), exact polygons from masks, the
seeded split, where the files go, and the atomic write."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from workbench.data.converters.coco_instances import (
    CocoInstances,
    image_size,
    mask_polygons,
    output_files,
    polygons_rle,
    split_image_ids,
    write_instances,
)
from workbench.errors import UserError

from tests.workbench.data.converters.writers import write_image


def test_image_size_applies_the_exif_orientation(tmp_path):
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the dataset sees it 20 wide, 40 high
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    assert image_size(path) == (20, 40)
    assert image_size(write_image(tmp_path / "plain.png", 40, 20)) == (40, 20)


def test_polygons_from_a_mask_rasterise_back_to_it():
    mask = np.zeros((24, 24), np.uint8)
    mask[3:9, 4:20] = 1
    mask[9:20, 4:8] = 1
    mask[15, 15] = 1  # a single pixel: a polygon too
    polygons, has_holes = mask_polygons(mask)
    assert not has_holes and len(polygons) == 2
    assert (mask_util.decode(polygons_rle(polygons, 24, 24)) == mask).all()


def test_the_split_is_seeded_disjoint_and_complete():
    ids = list(range(1, 11))
    split = split_image_ids(ids, 0.3, seed=0)
    assert split == split_image_ids(ids, 0.3, seed=0) and len(split["val"]) == 3
    assert split["train"] | split["val"] == set(ids) and not split["train"] & split["val"]
    assert split != split_image_ids(ids, 0.3, seed=1)
    with pytest.raises(UserError, match="leaves a split empty"):
        split_image_ids(ids, 0.01, seed=0)


def test_output_files():
    assert output_files(Path("d"), None) == [Path("d/instances.json")]
    assert output_files(Path("d/x.json"), None) == [Path("d/x.json")]
    assert output_files(Path("d"), ["train", "val"]) == [Path("d/instances_train.json"), Path("d/instances_val.json")]
    with pytest.raises(UserError, match="expected a folder"):
        output_files(Path("d/x.json"), ["train", "val"])


def test_a_split_writes_two_files_with_their_own_images_and_annotations(tmp_path):
    instances = CocoInstances(["thing"])
    for index in range(5):
        image_id = instances.add_image(f"{index}.png", 8, 8)
        instances.add_box(image_id, 1, [0, 0, 2, 2])
    paths = write_instances(instances, tmp_path / "out", val_fraction=0.4, seed=0)
    train, val = (json.loads(path.read_text()) for path in paths)
    assert len(train["images"]) == 3 and len(val["images"]) == 2
    assert {a["image_id"] for a in val["annotations"]} == {image["id"] for image in val["images"]}
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["instances_train.json",
                                                                          "instances_val.json"]


def test_class_names_must_be_distinct():
    with pytest.raises(UserError, match="distinct"):
        CocoInstances(["a", "a"])
