"""Pascal VOC XML to COCO: one `Annotations/*.xml` per image with `<size>` and `<object>`s of `<name>`,
`<bndbox>` and `<difficult>`.

VOC boxes are 1-based inclusive pixel indices: (xmin=1, xmax=W) covers the whole image, so the COCO box is
[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1] (detectron2's `load_voc_instances` makes the same shift). A box
outside its `<size>` is an error.

Difficult objects (`difficult` choices): "crowd" (default) keeps them with iscrowd=1, so that COCO evaluation
ignores them as VOC's own evaluation does; "keep" makes them ordinary instances (detectron2 trains on them: "they
don't hurt accuracy"); "skip" leaves them out (counted).
"""
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from workbench.data.converters.coco_instances import CocoInstances, image_size
from workbench.errors import MissingFileError, UserError

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
DIFFICULT_CHOICES = ("crowd", "keep", "skip")
BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


def read_xml(path: Path) -> ElementTree.Element:
    """The root `<annotation>` element of a VOC file."""
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise UserError(f"{path}: not valid XML ({error}); expected a VOC <annotation> file") from error


def number(element: ElementTree.Element, field: str, path: Path, where: str) -> float:
    """The number in `element`'s child `field`."""
    text = element.findtext(field)
    try:
        return float(text)
    except (TypeError, ValueError) as error:
        raise UserError(f"{path}: {where}: <{field}> must be a number, got {text!r}") from error


def voc_size(root: ElementTree.Element, path: Path, image: Path) -> tuple[int, int]:
    """The image's (width, height): its header's, which must agree with `<size>` where that is given (non-zero)."""
    width, height = image_size(image)
    size = root.find("size")
    if size is not None and size.findtext("width", "0").strip() not in ("", "0"):
        stated = int(number(size, "width", path, "<size>")), int(number(size, "height", path, "<size>"))
        if stated != (width, height):
            raise UserError(f"{path}: <size> says {stated[0]}x{stated[1]} but image {image} is {width}x{height}; "
                            f"expected the image's size")
    return width, height


def voc_box(element: ElementTree.Element, path: Path, where: str, width: int, height: int) -> list[float]:
    """The COCO [x, y, w, h] of a `<bndbox>` (1-based inclusive corners), checked against the image size."""
    if element is None:
        raise UserError(f"{path}: {where}: no <bndbox>; expected <bndbox> with {', '.join(BOX_FIELDS)}")
    xmin, ymin, xmax, ymax = (number(element, field, path, where) for field in BOX_FIELDS)
    if not (1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height):
        raise UserError(f"{path}: {where}: box (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g}) is "
                        f"outside its {width}x{height} image; expected 1 <= xmin <= xmax <= {width} and "
                        f"1 <= ymin <= ymax <= {height}")
    return [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]


def discover_classes(files: list[Path]) -> list[str]:
    """The object names used in the VOC files, sorted."""
    return sorted({(obj.findtext("name") or "").strip() for path in files for obj in read_xml(path).iter("object")})


def convert_voc(images: str | Path, annotations: str | Path, classes: list[str] | None = None, *,
                discover: bool = False, difficult: str = "crowd") -> CocoInstances:
    """Converts a folder of VOC XML files.

    Args:
        images: the image folder; an XML's `<filename>` is relative to it (file names in the output too).
        annotations: the folder of XML files (subfolders included).
        classes: the class list; default VOC's 20 classes. An object of another class is an error.
        discover: use the names found in the files, sorted, as the class list.
        difficult: "crowd", "keep" or "skip" (see the module docstring).
    """
    if difficult not in DIFFICULT_CHOICES:
        raise UserError(f"difficult must be one of {', '.join(DIFFICULT_CHOICES)}, got {difficult!r}")
    images, annotations = Path(images), Path(annotations)
    if not annotations.is_dir():
        raise MissingFileError(f"annotation folder not found: {annotations}")
    files = sorted(annotations.rglob("*.xml"))
    if not files:
        raise MissingFileError(f"annotation folder {annotations} holds no .xml files; expected VOC XML files")
    instances = CocoInstances(discover_classes(files) if discover else list(classes or VOC_CLASSES))
    for path in files:
        root = read_xml(path)
        file_name = (root.findtext("filename") or "").strip()
        if not file_name:
            raise UserError(f"{path}: no <filename>; expected the image's file name")
        width, height = voc_size(root, path, images / file_name)
        image_id = instances.add_image(file_name, width, height)
        for index, obj in enumerate(root.iter("object")):
            where = f"object {index + 1}"
            category_id = instances.category_id((obj.findtext("name") or "").strip(), f"{path}: {where}")
            bbox = voc_box(obj.find("bndbox"), path, where, width, height)
            is_difficult = (obj.findtext("difficult") or "0").strip() == "1"
            if is_difficult and difficult == "skip":
                instances.note("difficult objects: skipped")
                continue
            instances.add_box(image_id, category_id, bbox, int(is_difficult and difficult == "crowd"))
    return instances
