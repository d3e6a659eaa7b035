"""Round trips: the synthetic shapes set written by the test into each format, converted back, and scored against
one fixed set of detections: the same COCO numbers as against the original file.

Exact (equal numbers) for instance-mask folders (RLEs, and polygons along the pixel edges, which rasterise back to the
masks), VOC (integer boxes) and LabelMe (the same outlines). YOLO's normalised coordinates are written with 6
decimals, as Ultralytics writes them, so a box corner or a vertex moves by up to 64 * 5e-7 pixels; that can only flip
a match whose IoU sits on a threshold, so YOLO's numbers are compared within YOLO_TOLERANCE (here they come out
equal). Box-only formats (VOC, YOLO boxes) lose the masks, so their annotations' areas, which decide COCO's size
ranges (APs, APm, ...), are the boxes': their reference is the original file with box areas.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from workbench.data.converters import convert
from workbench.data.converters.coco_instances import mask_polygons
from workbench.data.shapes import make_shapes
from workbench.evaluation.coco import evaluate_coco

from tests.workbench.data.converters.writers import shape, voc_xml, write_labelme

CLASSES = ["circle", "square", "triangle"]
YOLO_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The shapes val split (6 images of 64 px) and its annotations."""
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, num_train=0, num_val=6, seed=0, size=64)
    path = root / "annotations" / "instances_val.json"
    return root / "val", path, json.loads(path.read_text())


def fixed_detections(dataset: dict) -> list[dict]:
    """Detections made from the annotations: shifted boxes and masks, falling scores, and a wrong-class duplicate of
    every third object, so that the COCO numbers are neither 0 nor 1."""
    detections = []
    for index, annotation in enumerate(dataset["annotations"]):
        x, y, w, h = annotation["bbox"]
        mask = np.roll(mask_util.decode(annotation["segmentation"]), index % 3 - 1, axis=1)
        rle = mask_util.encode(np.asfortranarray(mask))
        detection = {"image_id": annotation["image_id"], "category_id": annotation["category_id"],
                     "bbox": [x + index % 5 - 2, y + index % 3 - 1, w + index % 4 - 1, h],
                     "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                     "score": 1 - 0.03 * index}
        detections.append(detection)
        if index % 3 == 0:
            detections.append({**detection, "category_id": detection["category_id"] % 3 + 1, "score": 0.5})
    return detections


def with_box_areas(dataset: dict) -> dict:
    """The dataset as a box-only format keeps it: masks gone, areas those of the boxes."""
    annotations = [{key: value for key, value in annotation.items() if key != "segmentation"} |
                   {"area": annotation["bbox"][2] * annotation["bbox"][3]} for annotation in dataset["annotations"]]
    return {**dataset, "annotations": annotations}


def by_image(dataset: dict) -> dict[int, list[dict]]:
    annotations = {image["id"]: [] for image in dataset["images"]}
    for annotation in dataset["annotations"]:
        annotations[annotation["image_id"]].append(annotation)
    return annotations


def outlines(annotation: dict) -> list[np.ndarray]:
    """The annotation's polygons as [N, 2] arrays of pixel coordinates."""
    polygons, has_holes = mask_polygons(mask_util.decode(annotation["segmentation"]))
    assert not has_holes
    return [np.reshape(polygon, (-1, 2)) for polygon in polygons]


def write_masks(dataset: dict, out) -> None:
    out.mkdir()
    for image in dataset["images"]:
        ids = np.zeros((image["height"], image["width"]), np.uint16)
        for number, annotation in enumerate(by_image(dataset)[image["id"]], start=1):
            ids[mask_util.decode(annotation["segmentation"]) > 0] = annotation["category_id"] * 1000 + number
        Image.fromarray(ids).save(out / image["file_name"])


def write_voc(dataset: dict, out) -> None:
    out.mkdir()
    for image in dataset["images"]:
        objects = [(CLASSES[a["category_id"] - 1], a["bbox"][0] + 1, a["bbox"][1] + 1, a["bbox"][0] + a["bbox"][2],
                    a["bbox"][1] + a["bbox"][3], 0) for a in by_image(dataset)[image["id"]]]
        xml = voc_xml(image["file_name"], image["width"], image["height"], [(n, *map(int, b), d) for n, *b, d in
                                                                            objects])
        (out / image["file_name"]).with_suffix(".xml").write_text(xml)


def write_yolo(dataset: dict, out, segments: bool) -> None:
    out.mkdir()
    for image in dataset["images"]:
        scale = np.array([image["width"], image["height"]])
        lines = []
        for annotation in by_image(dataset)[image["id"]]:
            if segments:
                polygon, = outlines(annotation)
                values = (polygon / scale).ravel()
            else:
                x, y, w, h = annotation["bbox"]
                values = np.array([(x + w / 2) / scale[0], (y + h / 2) / scale[1], w / scale[0], h / scale[1]])
            lines.append(" ".join([str(annotation["category_id"] - 1), *(f"{v:.6f}" for v in values)]))
        (out / image["file_name"]).with_suffix(".txt").write_text("\n".join(lines) + "\n")


def write_labelme_files(dataset: dict, out, images) -> None:
    out.mkdir()
    for image in dataset["images"]:
        shapes = [shape(CLASSES[a["category_id"] - 1], polygon.tolist(), group_id=a["id"])
                  for a in by_image(dataset)[image["id"]] for polygon in outlines(a)]
        image_path = os.path.relpath(images / image["file_name"], out)
        write_labelme((out / image["file_name"]).with_suffix(".json"), image_path, shapes,
                      image["width"], image["height"])


def scores(annotation_file, detections: list[dict], iou_types: tuple[str, ...]) -> dict:
    results = evaluate_coco(annotation_file, detections, iou_types=iou_types)
    return {(iou_type, name): value for iou_type in iou_types for name, value in results[iou_type]["stats"].items()}


def converted(shapes, tmp_path, format_name: str, **options):
    images, _, dataset = shapes
    out = tmp_path / "converted.json"
    if format_name == "masks":
        write_masks(dataset, tmp_path / "masks")
        options.update(images=images, masks=tmp_path / "masks", class_map=dict(enumerate(CLASSES, start=1)))
    elif format_name == "voc":
        write_voc(dataset, tmp_path / "xml")
        options.update(images=images, annotations=tmp_path / "xml", classes=CLASSES)
    elif format_name == "labelme":
        write_labelme_files(dataset, tmp_path / "labelme", images)
        options.update(annotations=tmp_path / "labelme", images=images)
    else:
        write_yolo(dataset, tmp_path / "labels", segments=options.pop("segments"))
        options.update(images=images, labels=tmp_path / "labels", class_names=CLASSES)
    summary = convert(format_name, out, **options)
    assert summary["images"] == 6 and sum(summary["instances"].values()) == len(dataset["annotations"])
    return out


@pytest.mark.parametrize("format_name, options, iou_types, tolerance", [
    ("masks", {}, ("bbox", "segm"), 0),
    ("masks", {"polygons": True}, ("bbox", "segm"), 0),
    ("voc", {}, ("bbox",), 0),
    ("labelme", {}, ("bbox", "segm"), 0),
    ("yolo", {"segments": True}, ("bbox", "segm"), YOLO_TOLERANCE),
    ("yolo", {"segments": False}, ("bbox",), YOLO_TOLERANCE),
], ids=["masks-rle", "masks-polygons", "voc", "labelme", "yolo-seg", "yolo-det"])
def test_the_converted_file_scores_the_same_detections_as_the_original(shapes, tmp_path, read_clean, format_name,
                                                                       options, iou_types, tolerance):
    _, original, dataset = shapes
    out = converted(shapes, tmp_path, format_name, **options)
    read_clean(out)
    if iou_types == ("bbox",):  # a box-only format: its annotations' areas (COCO's size ranges) are the boxes'
        original = tmp_path / "original_box_areas.json"
        original.write_text(json.dumps(with_box_areas(dataset)))
    detections = fixed_detections(dataset)
    expected = scores(original, detections, iou_types)
    assert 0.2 < expected[("bbox", "AP")] < 0.95
    assert scores(out, detections, iou_types) == pytest.approx(expected, abs=tolerance, nan_ok=True)
