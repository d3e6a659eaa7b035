"""A 2000-image evaluation keeps resident memory flat: inference with masks to COCO results (RLEs), then
`evaluate_coco`, with a stand-in detector, since the concern is the pipeline and not the network; and a detector's
detections and AP do not depend on the evaluation's batch size."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import heads
from workbench.evaluation.detector import evaluate_detector

IMAGES = 2000
SIZE = 64
DETECTIONS = 5
SAMPLE_EVERY = 100
IMAGE_BYTES = 3 * SIZE * SIZE * 4  # one float32 image; every output tensor of an image is at least half as big


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def deep_size(value) -> int:
    """Bytes of `value` and everything its dicts and lists hold (COCO results: dicts, lists, str, numbers)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(key) + deep_size(item) for key, item in value.items())
    elif isinstance(value, list):
        size += sum(deep_size(item) for item in value)
    return size


class FixedDetector(nn.Module):
    """A detector in eval mode as far as the evaluation sees: new tensors of the same DETECTIONS boxes, scores,
    labels and soft masks ([N, 1, H, W]) for every image."""

    def __init__(self):
        super().__init__()
        corners = torch.linspace(4, 24, DETECTIONS)[:, None]
        self.register_buffer("boxes", torch.cat([corners, corners, corners + 30, corners + 20], dim=1))
        self.register_buffer("masks", torch.zeros(DETECTIONS, 1, SIZE, SIZE))
        for k, (x1, y1, x2, y2) in enumerate(self.boxes.int().tolist()):
            self.masks[k, 0, y1:y2, x1:x2] = 0.9

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        return [{"boxes": self.boxes.clone(), "scores": torch.linspace(0.9, 0.5, DETECTIONS),
                 "labels": torch.arange(DETECTIONS) % 2 + 1, "masks": self.masks.clone()} for _ in images]


class SampledImages(torch.utils.data.Dataset):
    """IMAGES random images; records the resident memory every SAMPLE_EVERY images it gives out."""

    label_to_cat_id = {1: 1, 2: 2}

    def __init__(self):
        self.samples: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return IMAGES

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if index % SAMPLE_EVERY == 0:
            self.samples.append((index, resident_bytes()))
        return torch.rand(3, SIZE, SIZE), {"image_id": index + 1}


def write_ground_truth(path: Path) -> Path:
    """One box per image, where the detector's first box is."""
    images = [{"id": i, "file_name": f"{i}.png", "height": SIZE, "width": SIZE} for i in range(1, IMAGES + 1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [4, 4, 30, 20], "area": 600, "iscrowd": 0,
                    "segmentation": [[4, 4, 34, 4, 34, 24, 4, 24]]} for i in range(1, IMAGES + 1)]
    categories = [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_evaluation_of_2000_images_keeps_resident_memory_flat(tmp_path):
    """The slope of resident memory over the second half of the images stays under the size of the COCO results
    each image legitimately adds, plus half an image: holding on to any image or output tensor breaks it."""
    dataset = SampledImages()
    ground_truth = write_ground_truth(tmp_path / "gt.json")
    results, detections, _ = evaluate_detector(FixedDetector().eval(), dataset, ground_truth, torch.device("cpu"),
                                               iou_types=("bbox", "segm"), batch_size=8)
    indices, resident = np.array(dataset.samples[len(dataset.samples) // 2:], dtype=np.float64).T
    slope = np.polyfit(indices, resident, 1)[0]
    legitimate = deep_size(detections) / IMAGES
    bound = legitimate + IMAGE_BYTES / 2
    print(f"resident memory slope over images {indices[0]:.0f}-{indices[-1]:.0f}: {slope / 1024:.1f} KiB/image "
          f"(bound {bound / 1024:.1f} KiB: results {legitimate / 1024:.1f} + half an image {IMAGE_BYTES / 2048:.1f})")
    assert len(detections) == IMAGES * DETECTIONS
    assert results["bbox"]["stats"]["AP50"] == 1.0
    assert slope < bound


SIZED = [(64, 96), (96, 64), (64, 64), (80, 112), (112, 80)]  # (height, width): a batch of them would be padded


class SizedImages(torch.utils.data.Dataset):
    """Random images of the sizes SIZED, each with image id index + 1."""

    label_to_cat_id = {1: 1, 2: 2}

    def __len__(self) -> int:
        return len(SIZED)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        return torch.rand(3, *SIZED[index], generator=torch.Generator().manual_seed(index)), {"image_id": index + 1}


def test_detections_and_ap_do_not_depend_on_the_batch_size(tmp_path):
    """A detector evaluated on images of different sizes in batches of 1 and of 3 gives the same detections and AP:
    the model sees one image at a time, so no image is padded to another's size."""
    images = [{"id": i + 1, "file_name": f"{i + 1}.png", "height": h, "width": w} for i, (h, w) in enumerate(SIZED)]
    annotations = [{"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [8, 8, 40, 30], "area": 1200,
                    "iscrowd": 0} for i in range(1, len(SIZED) + 1)]
    ground_truth = tmp_path / "gt.json"
    ground_truth.write_text(json.dumps({"images": images, "annotations": annotations,
                                        "categories": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]}))
    torch.manual_seed(0)
    model = heads.build_detector("faster_rcnn", backbone="resnet18", num_classes=3, min_size=64, max_size=128,
                                 box_score_thresh=0.0).eval()
    runs = [evaluate_detector(model, SizedImages(), str(ground_truth), torch.device("cpu"), iou_types=("bbox",),
                              batch_size=batch_size) for batch_size in (1, 3)]
    (one, one_detections, _), (three, three_detections, _) = runs
    assert one_detections
    assert three_detections == one_detections
    np.testing.assert_equal(three["bbox"]["stats"], one["bbox"]["stats"])  # NaN (no large objects) equals NaN
