import io
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import heads
from workbench.data.coco import CocoDetection, collate_fn
from workbench.data.images import ImageReadError

WIDTH, HEIGHT = 24, 16
CATEGORIES = [{"id": 42, "name": "c"}, {"id": 3, "name": "a"}, {"id": 7, "name": "b"}]


def rectangle_mask(x1, y1, x2, y2, height=HEIGHT, width=WIDTH):
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def uncompressed_rle(mask):
    """COCO's crowd format: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    boundaries = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(boundaries).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + counts}


def annotation(annotation_id, image_id, category_id, bbox, segmentation=None, **extra):
    x, y, w, h = bbox
    polygon = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {"id": annotation_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "area": w * h,
            "iscrowd": 0, "segmentation": polygon if segmentation is None else segmentation, **extra}


def write_dataset(root, annotations, images=None, categories=CATEGORIES, pixels=None):
    """Writes PNGs for `images` (default: ids 1 and 2, WIDTH x HEIGHT) and the JSON; returns (image_dir, ann_file)."""
    images = images or [{"id": i, "file_name": f"{i}.png", "width": WIDTH, "height": HEIGHT} for i in (1, 2)]
    (root / "images").mkdir(exist_ok=True)
    for image in images:
        path = root / "images" / image["file_name"]
        if not path.exists():
            default = np.full((image["height"], image["width"], 3), image["id"], dtype=np.uint8)
            Image.fromarray(default if pixels is None else pixels).save(path)
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root / "images", ann_file


def test_polygons_become_boxes_masks_and_contiguous_labels(tmp_path):
    annotations = [annotation(1, 1, 7, [2, 3, 10, 5]), annotation(2, 1, 42, [0, 0, 4, 4])]
    image_dir, ann_file = write_dataset(tmp_path, annotations)
    dataset = CocoDetection(image_dir, ann_file)
    image, target = dataset[0]
    assert image.shape == (3, HEIGHT, WIDTH) and image.dtype == torch.float32
    assert torch.allclose(image, torch.full_like(image, 1 / 255))
    assert target["boxes"].dtype == torch.float32
    assert target["boxes"].tolist() == [[2, 3, 12, 8], [0, 0, 4, 4]]
    assert target["labels"].tolist() == [2, 3]
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (2, HEIGHT, WIDTH)
    assert torch.equal(target["masks"][0], torch.from_numpy(rectangle_mask(2, 3, 12, 8)))
    assert target["image_id"] == 1
    assert target["area"].tolist() == [50.0, 16.0] and target["area"].dtype == torch.float32
    assert target["iscrowd"].tolist() == [0, 0] and target["iscrowd"].dtype == torch.int64


def test_non_contiguous_category_ids_map_to_labels_and_back(tmp_path):
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [0, 0, 2, 2])])
    dataset = CocoDetection(image_dir, ann_file)
    assert dataset.cat_ids == [3, 7, 42]
    assert dataset.cat_id_to_label == {3: 1, 7: 2, 42: 3}
    assert dataset.label_to_cat_id == {1: 3, 2: 7, 3: 42}
    assert dataset.class_names == ["__background__", "a", "b", "c"]


def test_compressed_and_uncompressed_rle_decode_to_the_same_mask(tmp_path):
    mask = rectangle_mask(5, 2, 9, 14)
    mask[4, 20] = 1
    image_dir, ann_file = write_dataset(tmp_path, [
        annotation(1, 1, 3, [5, 2, 16, 13], compressed_rle(mask)),
        annotation(2, 1, 3, [5, 2, 16, 13], uncompressed_rle(mask)),
    ])
    _, target = CocoDetection(image_dir, ann_file)[0]
    assert torch.equal(target["masks"][0], torch.from_numpy(mask))
    assert torch.equal(target["masks"][1], torch.from_numpy(mask))


def test_crowd_annotations_are_dropped_for_training_and_kept_for_evaluation(tmp_path):
    crowd = annotation(2, 1, 3, [0, 0, 8, 8], uncompressed_rle(rectangle_mask(0, 0, 8, 8)), iscrowd=1)
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [10, 2, 4, 4]), crowd])
    training = CocoDetection(image_dir, ann_file, train=True)
    assert training[0][1]["iscrowd"].tolist() == [0] and training.stats["ignored_crowd"] == 1
    evaluation = CocoDetection(image_dir, ann_file, train=False)
    _, target = evaluation[0]
    assert target["iscrowd"].tolist() == [0, 1]
    assert target["boxes"][1].tolist() == [0, 0, 8, 8] and target["masks"][1].sum() == 64


def test_images_without_annotations_are_skipped_in_training_only(tmp_path):
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 2, 3, [0, 0, 2, 2])])
    training = CocoDetection(image_dir, ann_file)
    assert len(training) == 1 and training.image_ids == [2] and training.stats["skipped_images"] == 1
    assert len(CocoDetection(image_dir, ann_file, skip_empty=False)) == 2
    evaluation = CocoDetection(image_dir, ann_file, train=False)
    assert evaluation.image_ids == [1, 2]
    _, target = evaluation[0]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["masks"].shape == (0, HEIGHT, WIDTH)


def test_without_masks_the_target_has_no_masks(tmp_path):
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [0, 0, 2, 2], segmentation=[])])
    _, target = CocoDetection(image_dir, ann_file, with_masks=False)[0]
    assert "masks" not in target and target["boxes"].shape == (1, 4)


def half_bright(height=HEIGHT, width=WIDTH):
    """An RGB image whose left half is 200 and right half 0."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, : width // 2] = 200
    return rgb


def palette_with_transparency(rgb):
    image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    image.info["transparency"] = 0
    return image


IMAGE_KINDS = {  # kind: (writer of the half-bright image, file name)
    "grayscale": (lambda rgb: Image.fromarray(rgb).convert("L"), "1.png"),
    "RGBA": (lambda rgb: Image.fromarray(rgb).convert("RGBA"), "1.png"),
    "gray with alpha": (lambda rgb: Image.fromarray(rgb).convert("LA"), "1.png"),
    "palette": (lambda rgb: Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE), "1.png"),
    "palette with transparency": (palette_with_transparency, "1.png"),
    # 51300 / 257 rounds to 200; its low byte is 100, what a wrapping astype(uint8) would give
    "16-bit gray": (lambda rgb: Image.fromarray(np.where(rgb[..., 0] == 200, 51300, 0).astype(np.uint16)), "1.png"),
    "CMYK JPEG": (lambda rgb: Image.fromarray(rgb).convert("CMYK"), "1.jpg"),
    "PNG named .jpg": (lambda rgb: Image.fromarray(rgb), "1.jpg"),
}


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_every_image_kind_loads_as_8_bit_rgb(tmp_path, kind):
    write, file_name = IMAGE_KINDS[kind]
    (tmp_path / "images").mkdir()
    image = write(half_bright())
    image.save(tmp_path / "images" / file_name, **({"format": "PNG"} if kind == "PNG named .jpg" else {}))
    images = [{"id": 1, "file_name": file_name, "width": WIDTH, "height": HEIGHT}]
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [0, 0, 2, 2])], images=images)
    tensor, _ = CocoDetection(image_dir, ann_file)[0]
    assert tensor.shape == (3, HEIGHT, WIDTH)
    tolerance = 0.05 if file_name.endswith(".jpg") and kind != "PNG named .jpg" else 1e-6  # JPEG is lossy
    assert tensor[:, :, WIDTH // 2 + 1 :].max() < tolerance
    assert (tensor[:, :, : WIDTH // 2 - 1] - 200 / 255).abs().max() < tolerance


@pytest.mark.parametrize("width, height", [(1, 1), (2000, 4), (4, 2000)])
def test_extreme_sizes_load_and_go_through_a_detector(tmp_path, width, height):
    images = [{"id": 1, "file_name": "1.png", "width": width, "height": height}]
    box = [0, 0, min(width, 4), min(height, 4)]
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, box)], images=images)
    image, target = CocoDetection(image_dir, ann_file)[0]
    assert image.shape == (3, height, width)
    model = heads.build_detector("mask_rcnn", backbone="resnet18", num_classes=4, min_size=64, max_size=128).eval()
    with torch.no_grad():
        output, = model([image])
    assert output["boxes"].shape[1] == 4 and output["masks"].shape[2:] == (height, width)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    stored[:6, :6] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise to display
    images = [{"id": 1, "file_name": "1.jpg", "width": HEIGHT, "height": WIDTH}]
    (tmp_path / "images").mkdir()
    Image.fromarray(stored).save(tmp_path / "images" / "1.jpg", exif=exif, quality=95)
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [0, 0, 2, 2])], images=images)
    dataset = CocoDetection(image_dir, ann_file)
    image, _ = dataset[0]
    assert image.shape == (3, WIDTH, HEIGHT)
    assert image[:, 1:4, -4:-1].min() > 0.8, "the stored top-left corner is displayed top-right"
    assert image[:, -4:, :4].max() < 0.2
    assert dataset.get_height_and_width(0) == (WIDTH, HEIGHT)


def test_image_size_differing_from_the_annotation_file_is_an_error(tmp_path):
    images = [{"id": 1, "file_name": "1.png", "width": WIDTH + 1, "height": HEIGHT}]
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(tmp_path / "images" / "1.png")
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [0, 0, 2, 2])], images=images)
    with pytest.raises(ValueError, match=r"image id 1 .*1\.png.* 24x16 .* 25x16"):
        CocoDetection(image_dir, ann_file)[0]


def test_out_of_image_boxes_are_clipped_and_degenerate_ones_dropped(tmp_path, caplog):
    annotations = [
        annotation(1, 1, 3, [-3, 10, 8, 10]),  # clipped to [0, 10, 5, 16]
        annotation(2, 1, 3, [30, 2, 5, 5]),  # wholly outside: dropped
        annotation(3, 1, 3, [4, 4, 0, 6]),  # zero width: dropped
        annotation(4, 1, 3, [4, 4, 5, 0.5]),  # under a pixel high: dropped
        annotation(5, 1, 3, [1, 1, 3, 3]),
    ]
    image_dir, ann_file = write_dataset(tmp_path, annotations)
    with caplog.at_level(logging.INFO, logger="workbench.data.coco"):
        dataset = CocoDetection(image_dir, ann_file)
    assert dataset.stats == {"clipped_boxes": 1, "dropped_boxes": 3, "skipped_images": 1, "ignored_crowd": 0,
                             "suspect_annotations": 0}
    assert dataset[0][1]["boxes"].tolist() == [[0, 10, 5, 16], [1, 1, 4, 4]]
    records = [r for r in caplog.records if r.name == "workbench.data.coco"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "1 boxes clipped" in records[0].getMessage() and "3 degenerate boxes dropped" in records[0].getMessage()


def truncated(image_bytes: bytes) -> bytes:
    return image_bytes[: len(image_bytes) // 2]


def encoded(format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)).save(buffer, format)
    return buffer.getvalue()


UNREADABLE = {  # case: the bytes of image 2's file (None: no file)
    "not an image": b"not an image",
    "zero bytes": b"",
    "PNG header only": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    "truncated PNG": truncated(encoded("PNG")),
    "truncated JPEG": truncated(encoded("JPEG")),
    "missing": None,
}


def dataset_with_unreadable_image(root, content, **options):
    image_dir, ann_file = write_dataset(root, [annotation(1, 1, 3, [0, 0, 2, 2]), annotation(2, 2, 3, [0, 0, 2, 2])])
    path = image_dir / "2.png"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    return CocoDetection(image_dir, ann_file, **options)


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_image_stops_with_an_error_naming_the_file_and_id(tmp_path, case):
    dataset = dataset_with_unreadable_image(tmp_path, UNREADABLE[case], unreadable_images="stop")
    with pytest.raises(ImageReadError, match=r"image id 2 from .*2\.png"):
        dataset[1]


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_image_is_skipped_with_a_counted_warning(tmp_path, caplog, case):
    training = dataset_with_unreadable_image(tmp_path, UNREADABLE[case])
    with caplog.at_level(logging.WARNING, logger="workbench.data.images"):
        assert training[1][1]["image_id"] == 1, "the next readable image takes its place"
        evaluation = CocoDetection(training.image_dir, training.ann_file, train=False)
        assert evaluation[1] is None
        images, targets = collate_fn([evaluation[0], evaluation[1]])
    assert len(images) == 1 and targets[0]["image_id"] == 1
    messages = [r.getMessage() for r in caplog.records if "2.png" in r.getMessage()]
    assert len(messages) == 3 and "image id 2" in messages[0] and "2 unreadable images in this process" in messages[2]


def test_a_dataset_without_any_readable_image_is_an_error(tmp_path):
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 3, [0, 0, 2, 2])])
    (image_dir / "1.png").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 1 images"):
        CocoDetection(image_dir, ann_file)[0]


VALID = {"images": [{"id": 1, "file_name": "1.png", "width": WIDTH, "height": HEIGHT}],
         "annotations": [annotation(5, 1, 3, [0, 0, 2, 2])], "categories": CATEGORIES}


def with_annotation_field(field, value):
    content = json.loads(json.dumps(VALID))
    content["annotations"][0][field] = value
    return content


@pytest.mark.parametrize("content, message", [
    ({key: VALID[key] for key in ("images", "annotations")}, "'categories'"),
    ({key: VALID[key] for key in ("images", "categories")}, "'annotations'"),
    (with_annotation_field("bbox", [0, 0, 2]), "annotation id 5: field 'bbox'"),
    (with_annotation_field("bbox", [0, "a", 2, 2]), "annotation id 5: field 'bbox'"),
    (with_annotation_field("segmentation", "polygon"), "annotation id 5: field 'segmentation'"),
    ({**VALID, "images": [{"id": 1, "file_name": "1.png", "width": WIDTH}]}, "image id 1: field 'height'"),
    ({**VALID, "images": [{"id": 1, "width": WIDTH, "height": HEIGHT}]}, "image id 1: field 'file_name'"),
    ({**VALID, "images": [{"id": 1, "file_name": "1.png", "width": 0, "height": HEIGHT}]}, "must be positive"),
    ({**VALID, "categories": CATEGORIES + CATEGORIES[:1]}, "category id 42 appears twice"),
])
def test_malformed_annotation_files_name_the_problem(tmp_path, content, message):
    ann_file = tmp_path / "bad.json"
    ann_file.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="bad.json") as error:
        CocoDetection(tmp_path, ann_file)
    assert message in str(error.value)


@pytest.mark.parametrize("field, value, warning", [
    ("bbox", [0, float("nan"), 2, 2], "1 NaN or infinite boxes (ids 5); dropped from training"),
    ("bbox", [0, 0, -1, 2], "1 boxes of negative width or height (ids 5); dropped from training"),
    ("category_id", 99, "1 annotations of unknown category ids (ids 5); dropped from training"),
    ("image_id", 8, "1 annotations on images missing from the file (ids 5); dropped from training"),
    ("segmentation", {"counts": "abc", "size": [3, 3]}, "1 RLEs of another size than their image (ids 5); dropped"),
    ("segmentation", [[0, 0, 2, 2]], "1 segmentations of polygons of fewer than 3 points only (ids 5); dropped"),
    ("id", 4, "1 duplicate annotation ids (ids 4); all but the first dropped from training"),
])
def test_suspect_annotations_are_counted_and_left_out_of_training(tmp_path, caplog, field, value, warning):
    content = with_annotation_field(field, value)
    content["annotations"].insert(0, annotation(4, 1, 3, [4, 4, 8, 8]))
    image_dir, ann_file = write_dataset(tmp_path, content["annotations"], images=content["images"])
    with caplog.at_level(logging.WARNING):
        dataset = CocoDetection(image_dir, ann_file)
    assert sum(warning in record.getMessage() for record in caplog.records) == 1, caplog.text
    assert dataset[0][1]["boxes"].tolist() == [[4, 4, 12, 12]] and dataset.stats["suspect_annotations"] == 1


def test_invalid_json_is_an_error_naming_the_file(tmp_path):
    ann_file = tmp_path / "broken.json"
    ann_file.write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        CocoDetection(tmp_path, ann_file)


def test_sizes_and_aspect_ratios_come_from_the_annotation_file(tmp_path):
    images = [{"id": 1, "file_name": "1.png", "width": 30, "height": 10},
              {"id": 2, "file_name": "2.png", "width": 10, "height": 20}]
    image_dir, ann_file = write_dataset(tmp_path, [], images=images)
    (image_dir / "1.png").unlink()
    dataset = CocoDetection(image_dir, ann_file, train=False)
    assert [dataset.get_height_and_width(i) for i in range(2)] == [(10, 30), (20, 10)]
    assert dataset.aspect_ratios() == [3.0, 0.5]


def test_transforms_receive_numpy_and_collate_keeps_lists(tmp_path):
    annotations = [annotation(1, 1, 3, [0, 0, 2, 2]), annotation(2, 2, 7, [1, 1, 2, 2])]
    image_dir, ann_file = write_dataset(tmp_path, annotations)
    received = []

    def record(image, target):
        received.append((image, target))
        return torch.zeros(1), target

    dataset = CocoDetection(image_dir, ann_file, transforms=record)
    images, targets = collate_fn([dataset[0], dataset[1]])
    image, target = received[0]
    assert isinstance(image, np.ndarray) and image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    assert isinstance(target["boxes"], np.ndarray) and target["masks"].dtype == np.uint8
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == 2
    assert [t["image_id"] for t in targets] == [1, 2]


def test_labels_can_be_the_category_ids_themselves(tmp_path):
    """torchvision's COCO detectors: label k is category id k; the names of other labels are "N/A"."""
    image_dir, ann_file = write_dataset(tmp_path, [annotation(1, 1, 7, [0, 0, 2, 2])])
    dataset = CocoDetection(image_dir, ann_file, labels_are_category_ids=True)
    assert dataset.cat_id_to_label == {3: 3, 7: 7, 42: 42}
    assert dataset.label_to_cat_id == {3: 3, 7: 7, 42: 42}
    assert len(dataset.class_names) == 43
    assert [dataset.class_names[i] for i in (0, 3, 7, 42)] == ["__background__", "a", "b", "c"]
    assert set(dataset.class_names[1:3] + dataset.class_names[8:42]) == {"N/A"}
    assert dataset[0][1]["labels"].tolist() == [7]
