"""YOLO labels: boxes and polygons in normalised coordinates, image sizes from the headers, images without a label
file kept empty, class names from data.yaml or a names file, and the errors naming file and line."""
import pytest

from workbench.data.converters import convert, convert_yolo
from workbench.data.converters.coco_instances import read_class_names
from workbench.errors import UserError

from tests.workbench.data.converters.writers import write_image


def yolo_set(root, extra_line: str | None = None):
    """Three 40x20 images: a box and a triangle; no label file; an empty label file."""
    for stem in ("a", "b", "c"):
        write_image(root / "images" / "train" / f"{stem}.png", 40, 20)
    labels = root / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text("0 0.25 0.5 0.5 1.0\n1 0.5 0 1 0 1 1\n" + (extra_line or ""))
    (labels / "c.txt").write_text("\n")
    (labels / "classes.txt").write_text("box\ntriangle\n")  # as LabelImg writes it: no image, skipped
    return root / "images" / "train", labels


def test_yolo_boxes_and_polygons_become_pixels(tmp_path, read_clean):
    images, labels = yolo_set(tmp_path)
    (tmp_path / "data.yaml").write_text("path: .\nnames:\n  0: box\n  1: triangle\n")
    names = read_class_names([str(tmp_path / "data.yaml")])
    summary = convert("yolo", tmp_path / "out.json", images=images, labels=labels, class_names=names)
    assert summary["images"] == 3 and summary["empty_images"] == 2
    assert summary["instances"] == {"box": 1, "triangle": 1}
    assert summary["notes"] == {"images without a label file: kept as empty images": 1,
                                "label files without an image: skipped": 1}
    content = read_clean(tmp_path / "out.json")
    box, triangle = content["annotations"]
    assert box["bbox"] == [0.0, 0.0, 20.0, 20.0] and "segmentation" not in box
    assert triangle["bbox"] == [20.0, 0.0, 20.0, 20.0] and triangle["segmentation"] == [[20, 0, 40, 0, 40, 20]]
    assert 180 <= triangle["area"] <= 220  # half of 20x20, as pycocotools rasterises the diagonal


def test_class_names_from_a_list_or_a_names_file(tmp_path):
    (tmp_path / "names.txt").write_text("box\ntriangle\n")
    (tmp_path / "data.yaml").write_text("names: [box, triangle]\n")
    assert read_class_names([str(tmp_path / "names.txt")]) == ["box", "triangle"]
    assert read_class_names([str(tmp_path / "data.yaml")]) == ["box", "triangle"]
    assert read_class_names(["box", "triangle"]) == ["box", "triangle"]


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.2", r"a.txt:3: 4 numbers; expected 5 \(class cx cy w h\)"),
    ("2 0.5 0.5 0.2 0.2", r"a.txt:3: class 2 is not an index into the 2 class names"),
    ("0 0.5 0.5 1.2 0.2", r"a.txt:3: coordinates outside 0-1"),
    ("0 0.1 0.5 0.4 0.2", r"a.txt:3: box \(cx 0.1, cy 0.5, w 0.4, h 0.2\) reaches outside the image"),
    ("0 a b c d", r"a.txt:3: not numbers"),
])
def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path, line, message):
    images, labels = yolo_set(tmp_path, line)
    with pytest.raises(UserError, match=message):
        convert("yolo", tmp_path / "out.json", images=images, labels=labels, class_names=["box", "triangle"])
    assert not (tmp_path / "out.json").exists()


def test_an_unreadable_image_is_an_error_naming_it(tmp_path):
    images, labels = yolo_set(tmp_path)
    (images / "b.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"b.png: cannot read the image header"):
        convert_yolo(images, labels, ["box", "triangle"])
