"""What a training run reads, said before it starts: instances per category of both splits (where a wrong category
mapping shows, as in detectron2's table) and what the validator left out."""
from collections import Counter

from tqdm import tqdm

from workbench.data.coco import CocoDetection
from workbench.data.detection_samples import DetectionSamples


def instance_counts(dataset: CocoDetection | DetectionSamples) -> tuple[Counter, Counter]:
    """(instances, crowd regions) per label that `dataset` yields: a COCO file's from its annotations, a user's
    dataset's from its targets (which reads every sample once, with a progress bar)."""
    instances, crowd = Counter(), Counter()
    if isinstance(dataset, CocoDetection):
        for image_id in dataset.image_ids:
            for annotation in dataset.instances.get(image_id, []):
                label = dataset.cat_id_to_label[annotation["category_id"]]
                (crowd if annotation["iscrowd"] else instances)[label] += 1
        return instances, crowd
    for index in tqdm(range(len(dataset)), desc=f"reading {dataset.name}", leave=False, dynamic_ncols=True):
        raw = {key: value for key, value in dataset.dataset[index][1].items() if key != "masks"}
        target = dataset.checked_target(raw, None, f"{dataset.name}[{index}]")
        for label, is_crowd in zip(target["labels"].tolist(), target["iscrowd"].tolist()):
            (crowd if is_crowd else instances)[label] += 1
    return instances, crowd


def left_out(dataset: CocoDetection | DetectionSamples) -> str:
    """What loading left out or changed, in words ("" when nothing, or for a user's dataset)."""
    if not isinstance(dataset, CocoDetection):
        return ""
    stats = dataset.stats
    parts = [f"{stats[key]} {words}" for key, words in (
        ("skipped_images", "images without annotations"), ("suspect_annotations", "suspect annotations"),
        ("dropped_boxes", "degenerate boxes"), ("ignored_crowd", "crowd regions (training ignores them)"),
        ("clipped_boxes", "boxes clipped to their image")) if stats[key]]
    return f"{dataset.ann_file}: " + ", ".join(parts) if parts else ""


def data_summary(train_set: CocoDetection | DetectionSamples, val_set: CocoDetection | DetectionSamples) -> str:
    """A table of instances (and crowd regions) per category in both splits, the image counts, and what the
    validator left out."""
    counts = {"train": instance_counts(train_set), "val": instance_counts(val_set)}
    names = train_set.class_names
    width = max(len("category"), *(len(names[label]) for label in range(1, len(names)) if names[label] != "N/A"))
    lines = [f"data: {len(train_set)} training images, {len(val_set)} validation images",
             f"  {'category':<{width}} {'train':>8} {'val':>8} {'val crowd':>10}"]
    for label in range(1, len(names)):
        if names[label] == "N/A":  # an id of labels_are_category_ids that is no category
            continue
        lines.append(f"  {names[label]:<{width}} {counts['train'][0][label]:>8} {counts['val'][0][label]:>8} "
                     f"{counts['val'][1][label]:>10}")
    lines.append(f"  {'total':<{width}} {sum(counts['train'][0].values()):>8} {sum(counts['val'][0].values()):>8} "
                 f"{sum(counts['val'][1].values()):>10}")
    lines += [f"  left out: {words}" for words in (left_out(train_set), left_out(val_set)) if words]
    return "\n".join(lines)
