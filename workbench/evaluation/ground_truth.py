"""COCO ground truth built from a dataset's targets, as the evaluation reads them, in the same pass as the predictions.

torchvision's references rebuild the ground truth in a second pass over the dataset, transforms and all (vision
#1888: 20 minutes for 670 images); here each target is turned into COCO annotations while its image is predicted.
"""
import numpy as np
import torch
from pycocotools import mask as mask_util


def image_entries(image_id: int, height: int, width: int, target: dict) -> tuple[dict, list[dict]]:
    """The COCO image entry of one sample and its annotations (without ids) from a target as
    `workbench.data.detection_samples.DetectionSamples` completes it: `bbox` [x, y, w, h], `area`, `iscrowd` and,
    when the target has masks, `segmentation` as a compressed RLE."""
    image = {"id": image_id, "height": height, "width": width, "file_name": f"{image_id}"}
    boxes = target["boxes"].tolist()
    labels, crowd, areas = (target[key].tolist() for key in ("labels", "iscrowd", "area"))
    rles = []
    if "masks" in target and boxes:
        rles = mask_util.encode(np.asfortranarray(target["masks"].to(torch.uint8).permute(1, 2, 0).numpy()))
    annotations = []
    for k, ((x1, y1, x2, y2), label) in enumerate(zip(boxes, labels)):
        annotation = {"image_id": image_id, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1],
                      "area": float(areas[k]), "iscrowd": int(crowd[k])}
        if rles:
            annotation["segmentation"] = {"size": rles[k]["size"], "counts": rles[k]["counts"].decode("ascii")}
        annotations.append(annotation)
    return image, annotations


def coco_ground_truth(entries: list[tuple[dict, list[dict]]], class_names: list[str]) -> dict:
    """A COCO instances dict of the (image, annotations) `entries` (of `image_entries`), with annotation ids 1..N
    and one category per class name after the background (id = label)."""
    images, annotations = [], []
    for image, image_annotations in sorted(entries, key=lambda entry: entry[0]["id"]):
        images.append(image)
        annotations += [dict(annotation, id=len(annotations) + k + 1)
                        for k, annotation in enumerate(image_annotations)]
    categories = [{"id": label, "name": name} for label, name in enumerate(class_names) if label > 0]
    return {"images": images, "annotations": annotations, "categories": categories}
