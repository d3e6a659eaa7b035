"""LabelMe JSON: polygons, rectangles and circles, shapes grouped by group_id into one instance of several
polygons, non-region shapes skipped, empty images, and the errors naming the file. (LabelMe polygons have no holes
and LabelMe has no crowd flag, so neither is tested here.)"""
import pytest

from workbench.data.converters import convert, convert_labelme
from workbench.errors import UserError

from tests.workbench.data.converters.writers import shape, write_image, write_labelme


def labelme_set(root):
    """Two images next to their JSON files: five shapes (two grouped, one line), and none."""
    for stem in ("a", "b"):
        write_image(root / f"{stem}.jpg", 48, 32)
    write_labelme(root / "a.json", "a.jpg", [
        shape("dog", [[2, 2], [12, 2], [12, 12], [2, 12]]),
        shape("dog", [[20, 2], [30, 10]], "rectangle"),
        shape("cat", [[30, 20], [34, 20]], "circle"),
        shape("person", [[2, 20], [8, 20], [8, 30]], group_id=1),
        shape("person", [[12, 20], [18, 20], [18, 30], [12, 30]], group_id=1),
        shape("person", [[40, 2], [46, 2]], "line"),
    ])
    write_labelme(root / "b.json", "b.jpg", [])
    return root


def test_labelme_shapes_grouped_into_instances(tmp_path, read_clean):
    root = labelme_set(tmp_path)
    summary = convert("labelme", tmp_path / "out" / "instances.json", annotations=root)
    assert summary["images"] == 2 and summary["empty_images"] == 1
    assert summary["instances"] == {"cat": 1, "dog": 2, "person": 1}
    assert summary["notes"] == {"shapes of type line: skipped (not a region)": 1}
    content = read_clean(tmp_path / "out" / "instances.json")
    square, rectangle, circle, person = content["annotations"]
    assert square["bbox"] == [2.0, 2.0, 10.0, 10.0] and rectangle["bbox"] == [20.0, 2.0, 10.0, 8.0]
    assert circle["bbox"] == pytest.approx([26.0, 16.0, 8.0, 8.0]) and len(circle["segmentation"][0]) == 128
    assert len(person["segmentation"]) == 2 and person["bbox"] == [2.0, 20.0, 16.0, 10.0]


def test_points_outside_the_image_are_clipped_and_counted(tmp_path, read_clean):
    write_image(tmp_path / "a.jpg", 48, 32)
    write_labelme(tmp_path / "a.json", "a.jpg", [shape("dog", [[-1, 2], [50, 2], [50, 40]])])
    summary = convert("labelme", tmp_path / "out.json", annotations=tmp_path)
    assert summary["notes"] == {"shapes with points outside the image: clipped": 1}
    assert read_clean(tmp_path / "out.json")["annotations"][0]["bbox"] == [0.0, 2.0, 48.0, 30.0]


def test_broken_json_wrong_size_and_unknown_label_are_errors_naming_the_file(tmp_path):
    root = labelme_set(tmp_path)
    with pytest.raises(UserError, match=r"a.json: shape 1 \('dog'\): class 'dog' is not in the class list"):
        convert_labelme(root, classes=["cat", "person"])
    write_labelme(root / "b.json", "b.jpg", [], width=50)
    with pytest.raises(UserError, match=r"b.json: imageWidth x imageHeight is 50x32 but image .*b.jpg is 48x32"):
        convert_labelme(root)
    (root / "b.json").write_text('{"shapes": [')
    with pytest.raises(UserError, match=r"b.json: not valid JSON"):
        convert("labelme", tmp_path / "out.json", annotations=root)
    assert not (tmp_path / "out.json").exists()
