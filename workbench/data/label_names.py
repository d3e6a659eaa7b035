"""What a model's output labels mean when no dataset is loaded: class names and COCO category ids, from the config's
annotation file or class folders where they exist, else from the label spaces built in (COCO's 80 categories, as
torchvision's COCO detectors and our COCO configs use them; ImageNet's 1000 classes)."""
import json
import logging
from pathlib import Path

from torchvision.models import ResNet50_Weights
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

from backbones.safe_pickle import load_pickle
from workbench.data.classification import CIFAR, text
from workbench.data.coco import label_space

logger = logging.getLogger(__name__)

# Index = COCO category id (1..90), "N/A" for the ids COCO does not use, "__background__" at 0.
COCO_CATEGORY_NAMES: list[str] = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
IMAGENET_CLASSES: list[str] = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def coco_categories() -> dict[int, str]:
    """COCO's 80 category names by id."""
    return {cat_id: name for cat_id, name in enumerate(COCO_CATEGORY_NAMES) if name not in ("__background__", "N/A")}


def detection_labels(model: dict, annotations: Path) -> tuple[list[str], dict[int, int]]:
    """The class name of each label (0 the background) and the COCO category id of each label, for the config
    section `model` of a detector: from the annotation file when it exists; else COCO's categories when the model's
    labels are COCO category ids or it has COCO's 81 outputs; else "class k" names and labels as ids, with a warning.
    """
    if annotations.is_file():
        categories = {c["id"]: c["name"] for c in json.loads(annotations.read_text())["categories"]}
    elif model["labels_are_category_ids"] or model["num_classes"] == len(coco_categories()) + 1:
        categories = coco_categories()
    else:
        logger.warning("no annotation file at %s to name the %d classes; they are called 'class 1'... and their "
                       "labels are given as category ids", annotations, model["num_classes"] - 1)
        categories = {label: f"class {label}" for label in range(1, model["num_classes"])}
    cat_id_to_label, class_names = label_space(categories, model["labels_are_category_ids"], annotations)
    return class_names, {label: cat_id for cat_id, label in cat_id_to_label.items()}


def classification_labels(config: dict) -> list[str]:
    """The class name of each label of a classification config: its class folders (or CIFAR meta file) when they
    exist; else ImageNet's classes for 1000 outputs; else "class k", with a warning."""
    data, num_classes = config["data"], config["model"]["num_classes"]
    root = Path(data["root"])
    names = []
    if data["dataset"] in CIFAR:
        spec = CIFAR[data["dataset"]]
        meta = root / spec["folder"] / spec["meta"]
        names = [text(name) for name in load_pickle(meta)[spec["names"]]] if meta.is_file() else []
    else:
        for folder in (root / data["val_dir"], root / data["train_dir"]):
            if folder.is_dir():
                names = sorted(p.name for p in folder.iterdir() if p.is_dir())
                break
    if len(names) == num_classes:
        return names
    if num_classes == len(IMAGENET_CLASSES):
        return list(IMAGENET_CLASSES)
    logger.warning("no class names for the %d classes of %s data in %s; they are called 'class 0'...", num_classes,
                   data["dataset"], root)
    return [f"class {label}" for label in range(num_classes)]
