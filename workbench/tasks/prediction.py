"""Running a trained model on your own images, as detectron2's `demo/demo.py` does.

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
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from workbench.data.image_files import ImageFiles, as_list, picture_names
from workbench.evaluation.coco import image_to_coco
from workbench.evaluation.detector import only_categories
from workbench.evaluation.pictures import draw_predictions
from workbench.tasks.predictors import Predictor

logger = logging.getLogger(__name__)

TOP_K = 5


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
