"""Pascal VOC XML: 1-based boxes shifted to COCO's, difficult objects as crowd / kept / skipped, empty images,
class lists (VOC's 20, given, discovered), and the errors naming the file."""
import pytest

from workbench.data.converters import convert, convert_voc
from workbench.errors import UserError

from tests.workbench.data.converters.writers import voc_xml, write_image


def voc_set(root, extra: dict | None = None):
    """Three images: a dog and a difficult person, an empty one, a cat covering the whole image."""
    files = {"a": [("dog", 1, 1, 10, 20, 0), ("person", 5, 5, 30, 30, 1)], "b": [], "c": [("cat", 1, 1, 48, 32, 0)]}
    files.update(extra or {})
    for stem, objects in files.items():
        write_image(root / "JPEGImages" / f"{stem}.jpg", 48, 32)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", 48, 32, objects))
    return root / "JPEGImages", root / "Annotations"


def test_voc_boxes_difficult_as_crowd_and_empty_images(tmp_path, read_clean):
    images, annotations = voc_set(tmp_path)
    summary = convert("voc", tmp_path / "out.json", images=images, annotations=annotations)
    assert summary["images"] == 3 and summary["empty_images"] == 1 and summary["crowd"] == 1
    assert summary["instances"]["dog"] == 1 and summary["instances"]["cat"] == 1
    assert summary["instances"]["person"] == 0 and len(summary["instances"]) == 20
    content = read_clean(tmp_path / "out.json")
    dog, person, cat = content["annotations"]
    assert dog["bbox"] == [0.0, 0.0, 10.0, 20.0] and dog["area"] == 200
    assert person["iscrowd"] == 1 and cat["bbox"] == [0.0, 0.0, 48.0, 32.0]


@pytest.mark.parametrize("difficult, crowd, notes", [
    ("keep", 0, {}), ("skip", 0, {"difficult objects: skipped": 1})])
def test_difficult_objects_kept_or_skipped(tmp_path, difficult, crowd, notes):
    images, annotations = voc_set(tmp_path)
    summary = convert_voc(images, annotations, ["cat", "dog", "person"], difficult=difficult).summary()
    assert summary["crowd"] == crowd and summary["notes"] == notes
    assert summary["instances"] == {"cat": 1, "dog": 1, "person": 1 if difficult == "keep" else 0}


def test_classes_discovered_sorted(tmp_path):
    images, annotations = voc_set(tmp_path)
    instances = convert_voc(images, annotations, discover=True)
    assert [category["name"] for category in instances.categories] == ["cat", "dog", "person"]


def test_a_box_outside_its_image_is_an_error_and_nothing_is_written(tmp_path):
    images, annotations = voc_set(tmp_path, {"d": [("dog", 1, 1, 49, 10, 0)]})
    with pytest.raises(UserError, match=r"d.xml: object 1: box \(xmin 1, ymin 1, xmax 49, ymax 10\) is outside its "
                                        r"48x32 image"):
        convert("voc", tmp_path / "out.json", images=images, annotations=annotations)
    assert not (tmp_path / "out.json").exists()


def test_broken_xml_unknown_class_and_wrong_size_are_errors_naming_the_file(tmp_path):
    images, annotations = voc_set(tmp_path, {"e": [("unicorn", 1, 1, 5, 5, 0)]})
    with pytest.raises(UserError, match=r"e.xml: object 1: class 'unicorn' is not in the class list"):
        convert_voc(images, annotations)
    (annotations / "e.xml").write_text("<annotation><filename>e.jpg</filename>")
    with pytest.raises(UserError, match=r"e.xml: not valid XML"):
        convert_voc(images, annotations)
    (annotations / "e.xml").write_text(voc_xml("e.jpg", 50, 32, []))
    with pytest.raises(UserError, match=r"e.xml: <size> says 50x32 but image .*e.jpg is 48x32"):
        convert_voc(images, annotations)
