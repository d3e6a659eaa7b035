"""Instance-mask folders: Penn-Fudan style (one class, ids 1..N) and Cityscapes style (id // 1000 is the class,
ids below 1000 crowd of their class or skipped), holes, empty images, and the errors naming the file."""
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from workbench.data.converters import convert, convert_instance_masks
from workbench.errors import UserError

from tests.workbench.data.converters.writers import write_image

WIDTH, HEIGHT = 40, 32


def write_mask(path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids).save(path)


def pennfudan(root):
    """Three images: two instances (the first with a hole), none, one."""
    masks = [np.zeros((HEIGHT, WIDTH), np.uint8) for _ in range(3)]
    masks[0][2:12, 2:12] = 1
    masks[0][5:8, 5:8] = 0  # the hole
    masks[0][20:30, 20:38] = 2
    masks[2][4:20, 10:30] = 1
    for index, mask in enumerate(masks):
        write_image(root / "PNGImages" / f"Fudan{index}.png", WIDTH, HEIGHT)
        write_mask(root / "PedMasks" / f"Fudan{index}_mask.png", mask)
    return root / "PNGImages", root / "PedMasks"


def cityscapes(root, extra_id: int | None = None):
    """One 16-bit mask: two persons, a car, a crowd of persons (id 24) and road (id 7, no class)."""
    ids = np.zeros((HEIGHT, WIDTH), np.uint16)
    ids[:, :] = 7
    ids[2:10, 2:10] = 24001
    ids[2:10, 12:20] = 24002
    ids[12:20, 2:30] = 26001
    ids[22:30, 2:10] = 24
    if extra_id:
        ids[22:30, 30:38] = extra_id
    write_image(root / "leftImg8bit" / "aachen" / "aachen_000000_leftImg8bit.png", WIDTH, HEIGHT)
    write_mask(root / "gtFine" / "aachen" / "aachen_000000_gtFine_instanceIds.png", ids)
    return dict(images=root / "leftImg8bit", masks=root / "gtFine", mask_pattern="{stem}_gtFine_instanceIds.png",
                image_suffix="_leftImg8bit", class_map={24: "person", 26: "car"})


def test_pennfudan_masks_become_rles_with_holes_and_empty_images_kept(tmp_path, read_clean):
    images, masks = pennfudan(tmp_path)
    summary = convert("masks", tmp_path / "out", images=images, masks=masks, mask_pattern="{stem}_mask.png",
                      class_name="person")
    assert summary["images"] == 3 and summary["empty_images"] == 1 and summary["instances"] == {"person": 3}
    assert summary["crowd"] == 0 and summary["notes"] == {}
    content = read_clean(tmp_path / "out" / "instances.json")
    first = content["annotations"][0]
    assert first["bbox"] == [2.0, 2.0, 10.0, 10.0] and first["area"] == 100 - 9
    assert mask_util.decode(first["segmentation"])[6, 6] == 0  # the hole is kept
    assert [image["file_name"] for image in content["images"]] == ["Fudan0.png", "Fudan1.png", "Fudan2.png"]


def test_polygons_fill_holes_and_say_so(tmp_path, read_clean):
    images, masks = pennfudan(tmp_path)
    instances = convert_instance_masks(images, masks, "{stem}_mask.png", class_name="person", polygons=True)
    assert instances.summary()["notes"] == {"masks with holes: filled in their polygons": 1}
    areas = [annotation["area"] for annotation in instances.annotations]
    assert areas == [100, 180, 320]  # exact outlines; the hole's 9 pixels filled
    assert all(isinstance(annotation["segmentation"], list) for annotation in instances.annotations)


def test_cityscapes_ids_give_classes_crowds_and_skipped_stuff(tmp_path, read_clean):
    summary = convert("masks", tmp_path / "out.json", **cityscapes(tmp_path))
    assert summary["instances"] == {"person": 2, "car": 1} and summary["crowd"] == 1
    assert summary["notes"] == {"mask ids below 1000 (stuff) without a class: skipped": 1}
    content = read_clean(tmp_path / "out.json")
    assert content["images"][0]["file_name"] == "aachen/aachen_000000_leftImg8bit.png"
    crowd, = [a for a in content["annotations"] if a["iscrowd"]]
    assert crowd["category_id"] == 1 and crowd["area"] == 64 and isinstance(crowd["segmentation"], dict)


def test_an_instance_id_without_a_class_is_an_error_naming_file_and_id(tmp_path):
    with pytest.raises(UserError, match=r"aachen_000000_gtFine_instanceIds.png: instance id 27001 .* class id 27"):
        convert("masks", tmp_path / "out.json", **cityscapes(tmp_path, extra_id=27001))
    assert not (tmp_path / "out.json").exists()


def test_a_mask_of_another_size_than_its_image_is_an_error(tmp_path):
    images, masks = pennfudan(tmp_path)
    write_mask(masks / "Fudan1_mask.png", np.zeros((HEIGHT, WIDTH + 1), np.uint8))
    with pytest.raises(UserError, match=r"Fudan1_mask.png: mask is 41x32 but its image .*Fudan1.png is 40x32"):
        convert_instance_masks(images, masks, "{stem}_mask.png", class_name="person")


def test_a_broken_mask_or_image_is_an_error_naming_it(tmp_path):
    images, masks = pennfudan(tmp_path)
    (masks / "Fudan2_mask.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"Fudan2_mask.png: cannot read the mask"):
        convert_instance_masks(images, masks, "{stem}_mask.png", class_name="person")
    (images / "Fudan0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UserError, match=r"Fudan0.png: cannot read the image header"):
        convert_instance_masks(images, masks, "{stem}_mask.png", class_name="person")


def test_a_missing_mask_is_named(tmp_path):
    images, masks = pennfudan(tmp_path)
    (masks / "Fudan1_mask.png").unlink()
    with pytest.raises(UserError, match=r"Fudan1_mask.png: no such mask for image .*Fudan1.png"):
        convert_instance_masks(images, masks, "{stem}_mask.png", class_name="person")


def test_a_colour_mask_is_an_error(tmp_path):
    images, masks = pennfudan(tmp_path)
    Image.new("RGB", (WIDTH, HEIGHT)).save(masks / "Fudan0_mask.png")
    with pytest.raises(UserError, match=r"Fudan0_mask.png: mask of mode RGB; expected a single-channel"):
        convert_instance_masks(images, masks, "{stem}_mask.png", class_name="person")
