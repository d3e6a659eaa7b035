"""Running a detector over a dataset, sharded across ranks, and scoring it against the original COCO JSON, or
against the ground truth of the dataset's own targets (a user's dataset, see `workbench.data.detection_samples`)."""
import json
import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from backbones.old_paths import moved_names
from workbench.data.coco import collate_fn
from workbench.engine import distributed
from workbench.engine.stop_signals import ignore_stop_signals
from workbench.evaluation.coco import detections_to_coco, evaluate_coco
from workbench.evaluation.ground_truth import coco_ground_truth, image_entries

logger = logging.getLogger(__name__)


def only_categories(output: dict, label_to_cat_id: dict[int, int]) -> tuple[dict, int]:
    """The detections of `output` whose label maps to a category id, and how many others were dropped."""
    labels = output["labels"]
    keep = torch.isin(labels, torch.tensor(sorted(label_to_cat_id), dtype=labels.dtype, device=labels.device))
    return {key: value[keep] for key, value in output.items()}, int((~keep).sum())


@torch.inference_mode()
def detect_dataset(model: nn.Module, dataset, device: torch.device, batch_size: int = 2, workers: int = 0,
            keep: int = 0, ground_truth: bool = False) -> tuple[list[dict] | None, list[tuple], list | None]:
    """COCO results of this rank's share of `dataset`, gathered on the main process.

    The dataset maps labels to category ids (`label_to_cat_id`); when its labels are category ids
    (`labels_are_category_ids`, as for torchvision's COCO detectors), detections of ids that are no category of the
    dataset are left out with a counted warning.

    The loader batches `batch_size` images, but the model sees one image at a time, as torchvision's and
    detectron2's evaluations do: a batch pads its images to the largest, which changes the features near the
    border, so the detections (and the AP) would depend on which images share a batch.

    Args:
        keep: how many (image, prediction) pairs of rank 0 to return as well, for drawing.
        ground_truth: also turn every target into COCO ground truth (`ground_truth.image_entries`).

    Returns:
        The COCO result dicts of the whole dataset (None on the other ranks), up to `keep` (image, prediction)
        pairs, and with `ground_truth` the (image, annotations) entries of the whole dataset (None on the other
        ranks, and without `ground_truth`).
    """
    model.eval()
    rank, world = distributed.get_rank(), distributed.get_world_size()
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=workers, collate_fn=collate_fn,
                        generator=torch.Generator(), pin_memory=device.type == "cuda",
                        worker_init_fn=ignore_stop_signals)
    results, kept, entries, read, no_category = [], [], [], 0, 0
    for images, targets in tqdm(loader, desc="eval", disable=not distributed.is_main_process(), dynamic_ncols=True):
        read += len(images)
        if not images:
            continue
        outputs = [{k: v.cpu() for k, v in model([image.to(device, non_blocking=True)])[0].items()}
                   for image in images]
        if getattr(dataset, "labels_are_category_ids", False):  # an output per id up to the largest, some no category
            outputs, dropped = zip(*(only_categories(output, dataset.label_to_cat_id) for output in outputs))
            no_category += sum(dropped)
        results += detections_to_coco(outputs, [t["image_id"] for t in targets], dataset.label_to_cat_id)
        if ground_truth:
            entries += [image_entries(t["image_id"], *image.shape[-2:], t) for image, t in zip(images, targets)]
        kept += [(image, output) for image, output in zip(images, outputs)][: max(0, keep - len(kept))]
    if read < len(shard):
        logger.warning("%d of %d images could not be read and have no detections (see the warnings naming them)",
                       len(shard) - read, len(shard))
    if no_category:
        logger.warning("%d detections had labels that are no category id of the annotation file; left out",
                       no_category)
    parts = distributed.gather_to_main((results, entries))
    if parts is None:
        return None, kept, None
    gathered_entries = [e for _, part in parts for e in part] if ground_truth else None
    return [r for part, _ in parts for r in part], kept, gathered_entries


def evaluate_detector(model: nn.Module, dataset, annotation_file: str | Path | None, device: torch.device, *,
                      iou_types: tuple[str, ...], backend: str = "pycocotools", batch_size: int = 2,
                      workers: int = 0, keep: int = 0, ground_truth_file: str | Path | None = None
                      ) -> tuple[dict, list[dict] | None, list[tuple]]:
    """Predicts on `dataset` on every rank and evaluates on the main process, while the other ranks wait in the
    long-timeout group.

    Args:
        annotation_file: the dataset's COCO annotation file; None builds the ground truth from the dataset's targets
            (which then has `class_names`) in the same pass, and writes it to `ground_truth_file`, which
            `tools/eval_det.py --gt` reads as any annotation file. segm is then evaluated only when the targets have
            masks (a warning says so otherwise).

    Returns:
        The evaluation results (empty on other ranks), the COCO detections (None on other ranks), and the kept
        (image, prediction) pairs.
    """
    from_targets = annotation_file is None
    if from_targets and ground_truth_file is None:
        raise ValueError("evaluating against the dataset's targets needs a ground_truth_file to write them to")
    detections, kept, entries = detect_dataset(model, dataset, device, batch_size, workers, keep,
                                               ground_truth=from_targets)
    results = {}
    if distributed.is_main_process():
        if from_targets:
            annotation_file = Path(ground_truth_file)
            ground_truth = coco_ground_truth(entries, dataset.class_names)
            annotation_file.parent.mkdir(parents=True, exist_ok=True)
            annotation_file.write_text(json.dumps(ground_truth))
            iou_types = iou_types_with_masks(iou_types, ground_truth, annotation_file)
        results = evaluate_coco(annotation_file, detections, iou_types=iou_types, backend=backend)
    distributed.barrier()
    return results, detections, kept


def iou_types_with_masks(iou_types: tuple[str, ...], ground_truth: dict, path: Path) -> tuple[str, ...]:
    """`iou_types` without segm when annotations of `ground_truth` have no masks to compare, with a warning."""
    if "segm" in iou_types and any("segmentation" not in a for a in ground_truth["annotations"]):
        logger.warning("%s: the targets have no masks, so segm is not evaluated (bbox only)", path)
        return tuple(t for t in iou_types if t != "segm")
    return iou_types


# `predict` was this module's name of `detect_dataset` (deprecated, for one release): the one `predict` is
# `workbench.tasks.prediction.predict`, on one's own images.
__getattr__ = moved_names(__name__, {"predict": (__name__, "detect_dataset")})
