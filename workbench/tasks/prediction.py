"""Running a trained model on your own images, as detectron2's `demo/demo.py` does: `load_predictor` gives the
model with what its outputs mean, `predict` runs it over image files.

- A detector (a config with weights, a train_det.py checkpoint alone, or an exported ONNX file) writes one
  COCO-results JSON (boxes, scores, category ids and names, RLE masks) and one picture per image with its boxes,
  masks and class names.
- A classifier (a train_cls.py checkpoint alone, or a classification config with weights) writes
  the top-5 classes of each image.

Files that cannot be read are skipped with a warning naming each, and counted at the end.

The command line is `tools/predict.py`.
"""
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from workbench.config.loader import check_keys, load_config, merge, read_yaml
from workbench.config.schemas import SCHEMAS
from workbench.data.classification_transforms import eval_transform
from workbench.data.image_files import ImageFiles, as_list, picture_names
from workbench.data.label_names import classification_labels, detection_labels
from workbench.engine import distributed
from workbench.engine.checkpoints import load_training_state
from workbench.errors import UserError
from workbench.evaluation.coco import image_to_coco
from workbench.evaluation.detector import only_categories
from workbench.evaluation.pictures import draw_predictions
from workbench.tasks.classification import eval_sizes, normalisation
from workbench.tasks.classification_model import classifier_from_state, classifier_from_weights
from workbench.tasks.detection import build_model, split_paths, use_detector_checkpoint

logger = logging.getLogger(__name__)

TOP_K = 5


@dataclass
class Predictor:
    """What predicts, and what its outputs mean.

    Attributes:
        kind: "detector" (called with a list of [3, H, W] RGB float images in 0-1, returns torchvision's detection
            dicts) or "classifier" (called with a [B, 3, H, W] batch as `transform` makes it, returns logits).
        model: the model, in eval mode on `device`.
        class_names: the name of each label (a detector's label 0 is the background).
        label_to_cat_id: a detector's COCO category id of each label that is a category.
        transform: what turns an RGB PIL image into the model's input; None: a [3, H, W] uint8 tensor.
        device: where the model runs.
    """

    kind: str
    model: Callable
    class_names: list[str]
    label_to_cat_id: dict[int, int]
    transform: Callable[[Image.Image], torch.Tensor] | None
    device: torch.device


def config_kind(path: str) -> str:
    """"detection" or "classification": the schema whose keys the config file at `path` uses (detection when both
    fit)."""
    content, errors = read_yaml(path), {}
    for kind, defaults in SCHEMAS.items():
        try:
            check_keys(content, defaults, path)
            return kind
        except UserError as error:
            errors[kind] = error
    raise errors["detection"]


def saved_config(state: object, path: str) -> dict:
    """The config a train_det.py or train_cls.py checkpoint (`state`, read from `path`) was trained with."""
    config = state.get("config") if isinstance(state, dict) else None
    if not isinstance(config, dict) or "model" not in config:
        raise UserError(f"{path} holds no training config (it is not a train_det.py or train_cls.py checkpoint); "
                        "give the config it belongs to with --config")
    return config


def detector(config: dict, weights: str, device: torch.device) -> Predictor:
    """The detector of a detection config with `weights` (a whole-detector checkpoint: ours or torchvision's)."""
    use_detector_checkpoint(config, weights)
    class_names, label_to_cat_id = detection_labels(config["model"], split_paths(config["data"])["val_annotations"])
    model = build_model(config, device).eval()
    return Predictor("detector", model, class_names, label_to_cat_id, None, device)


def classifier(model: torch.nn.Module, config: dict, device: torch.device) -> Predictor:
    """A classifier with the center-crop evaluation transform of its config."""
    transform = eval_transform(*eval_sizes(config["data"], model), *normalisation(config["data"], model))
    return Predictor("classifier", model.to(device).eval(), classification_labels(config), {}, transform, device)


def onnx_detector(path: str) -> Predictor:
    """An exported detector run by onnxruntime; its class names and category ids come from the file's metadata (else
    "class k", and labels as ids)."""
    from workbench.export.onnx_runtime import OnnxDetector
    model = OnnxDetector(path)  # refuses files of other kinds, naming them
    metadata = model.metadata
    num_classes = metadata["num_classes"]
    class_names = metadata.get("class_names") or ["__background__"] + [f"class {k}" for k in range(1, num_classes)]
    category_ids = metadata.get("category_ids") or [None] + list(range(1, num_classes))
    label_to_cat_id = {label: cat_id for label, cat_id in enumerate(category_ids) if cat_id is not None}
    return Predictor("detector", model, class_names, label_to_cat_id, None, torch.device("cpu"))


def load_predictor(weights: str, config_file: str | None = None, overrides: list[str] = (),
                   device: str | None = None) -> Predictor:
    """The detector or classifier of `config_file` (with `overrides`) with `weights` of any supported format, or,
    without a config, of a train_det.py / train_cls.py checkpoint, on `device` (default: the config's
    train.device)."""
    state = None  # a training checkpoint's contents, read once
    if config_file:
        kind = config_kind(config_file)
        config = load_config(SCHEMAS[kind], config_file, overrides)
    else:
        state = load_training_state(weights)
        saved = saved_config(state, weights)
        kind = "detection" if "kind" in saved["model"] else "classification"
        config = load_config(merge(SCHEMAS[kind], saved), None, overrides)
    device = distributed.select_device(device or config["train"]["device"])
    if kind == "detection":
        return detector(config, weights, device)
    if state is None:
        return classifier(classifier_from_weights(config["model"], weights), config, device)
    return classifier(classifier_from_state(state, weights)[0], config, device)


def predict(predictor: Predictor, files: list[Path], output_dir: str | Path, score_thresh: float, batch_size: int,
            workers: int) -> list[dict]:
    """Runs `predictor` on the image `files` (as `find_images` lists them), `batch_size` at a time read by `workers`
    processes; writes `predictions.json` (and a picture per image for a detector, of the detections scoring at least
    `score_thresh`) into `output_dir`; returns what the JSON holds."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(ImageFiles(files, predictor.transform), batch_size=batch_size, num_workers=workers,
                        collate_fn=as_list)
    if predictor.kind == "detector":
        results, unreadable = detect(predictor, loader, files, output_dir, score_thresh)
    else:
        results, unreadable = classify(predictor, loader, files)
    (output_dir / "predictions.json").write_text(json.dumps(results))
    if unreadable:
        logger.warning("%d of %d files could not be read and were skipped: %s", len(unreadable), len(files),
                       ", ".join(str(files[i]) for i in unreadable[:10]) + (", ..." if len(unreadable) > 10 else ""))
    what = "detections" if predictor.kind == "detector" else "top-5 lists"
    pictures = f"; a picture per image in {output_dir}" if predictor.kind == "detector" else ""
    print(f"{len(files) - len(unreadable)} images, {len(results)} {what}: {output_dir / 'predictions.json'}{pictures}")
    return results


def readable(batch: list, unreadable: list[int]) -> list[tuple[int, torch.Tensor]]:
    """The (index, image) pairs of a batch of `ImageFiles` items; the others are warned about and recorded."""
    for index, _, error in batch:
        if error is not None:
            logger.warning("%s; skipped", error)
            unreadable.append(index)
    return [(index, image) for index, image, _ in batch if image is not None]


@torch.inference_mode()
def detect(predictor: Predictor, loader: DataLoader, files: list, output_dir: Path,
           score_thresh: float) -> tuple[list[dict], list[int]]:
    """COCO results of the detections scoring at least `score_thresh`, with `file_name` and `category_name`, and
    a picture per image; image ids count the files from 1. Returns them and the indices of unreadable files."""
    names = picture_names(files)
    category_names = {predictor.label_to_cat_id[label]: name for label, name in enumerate(predictor.class_names)
                      if label in predictor.label_to_cat_id}
    results, unreadable = [], []
    for batch in tqdm(loader, desc="predict", dynamic_ncols=True):
        pairs = readable(batch, unreadable)
        if not pairs:
            continue
        outputs = predictor.model([image.to(predictor.device, torch.float32) / 255 for _, image in pairs])
        for (index, image), output in zip(pairs, outputs):
            output, _ = only_categories({key: value.cpu() for key, value in output.items()}, predictor.label_to_cat_id)
            confident = output["scores"] >= score_thresh
            output = {key: value[confident] for key, value in output.items()}
            for result in image_to_coco(output, index + 1, predictor.label_to_cat_id):
                results.append(dict(result, file_name=str(files[index]),
                                    category_name=category_names[result["category_id"]]))
            draw_predictions(image, output, predictor.class_names, score_thresh).save(output_dir / names[index])
    return results, unreadable


@torch.inference_mode()
def classify(predictor: Predictor, loader: DataLoader, files: list) -> tuple[list[dict], list[int]]:
    """The top-5 classes (label, class name, probability) of each readable image, printed and returned, with the
    indices of unreadable files."""
    results, unreadable = [], []
    for batch in tqdm(loader, desc="predict", dynamic_ncols=True):
        pairs = readable(batch, unreadable)
        if not pairs:
            continue
        images = [image for _, image in pairs]
        chunks = [torch.stack(images)] if len({image.shape for image in images}) == 1 else [i[None] for i in images]
        logits = torch.cat([predictor.model(chunk.to(predictor.device)).float().cpu() for chunk in chunks])
        for (index, _), probabilities in zip(pairs, logits.softmax(dim=1)):
            top = probabilities.topk(min(TOP_K, len(probabilities)))
            classes = [{"label": label, "class_name": predictor.class_names[label], "probability": probability}
                       for probability, label in zip(top.values.tolist(), top.indices.tolist())]
            results.append({"image_id": index + 1, "file_name": str(files[index]), "top5": classes})
            tqdm.write(f"{files[index]}: " + ", ".join(f"{c['class_name']} {c['probability']:.3f}" for c in classes))
    return results, unreadable
