"""Drawing detections: boxes, filled semi-transparent masks, class name and score, one colour per class.

As a script, draws a COCO results file onto the images of its annotation file: one PNG per image and a grid.png.

The command line is `tools/visualize.py`.
"""
import colorsys
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools.coco import COCO
from torchvision.transforms.v2.functional import to_dtype, to_pil_image
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

MASK_ALPHA = 0.45
GRID_PADDING = 4


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """A distinct, saturated colour per class index (hues spread by the golden ratio)."""
    colors = []
    for index in range(num_classes):
        red, green, blue = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 0.95)
        colors.append((round(255 * red), round(255 * green), round(255 * blue)))
    return colors


def to_uint8_chw(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[3, H, W] uint8 tensor of a uint8 H x W x 3 array or a [3, H, W] tensor (float in 0-1 or uint8)."""
    if isinstance(image, np.ndarray):
        return torch.tensor(image).permute(2, 0, 1)
    image = image.detach().cpu()
    return to_dtype(image.clamp(0, 1), torch.uint8, scale=True) if image.is_floating_point() else image


def _class_name(label: int, class_names: list[str]) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def draw_predictions(image: np.ndarray | torch.Tensor, prediction: dict, class_names: list[str],
                     score_threshold: float = 0.5) -> Image.Image:
    """The image with the prediction's confident detections drawn on it.

    Args:
        image: uint8 H x W x 3 array, or [3, H, W] tensor in 0-1.
        prediction: torchvision detection output: `boxes` [N, 4] xyxy, `labels` [N], `scores` [N], and optionally
            `masks` [N, 1, H, W] probabilities, all in the image's pixels.
        class_names: name of each label, index 0 the background (as a dataset's `class_names`).
        score_threshold: detections scoring below this are left out.
    """
    canvas = to_uint8_chw(image)
    keep = prediction["scores"].detach().cpu() >= score_threshold
    if not keep.any():
        return to_pil_image(canvas)
    labels = prediction["labels"].detach().cpu()[keep].tolist()
    palette = class_colors(max(len(class_names), max(labels) + 1))
    colors = [palette[label] for label in labels]
    if "masks" in prediction:
        masks = prediction["masks"].detach().cpu()[keep][:, 0] > 0.5
        canvas = draw_segmentation_masks(canvas, masks, alpha=MASK_ALPHA, colors=colors)
    texts = [f"{_class_name(label, class_names)} {score:.2f}"
             for label, score in zip(labels, prediction["scores"].detach().cpu()[keep].tolist())]
    canvas = draw_bounding_boxes(canvas, prediction["boxes"].detach().cpu()[keep], labels=texts, colors=colors,
                                 width=2, fill_labels=True)
    return to_pil_image(canvas)


def upscale(image: torch.Tensor, prediction: dict, factor: int) -> tuple[torch.Tensor, dict]:
    """A [3, H, W] image and its prediction enlarged `factor` times (nearest, so pixels stay sharp)."""
    if factor == 1:
        return image, prediction
    image = image.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
    prediction = dict(prediction, boxes=prediction["boxes"].detach().cpu() * factor)
    if "masks" in prediction:
        prediction["masks"] = F.interpolate(prediction["masks"].detach().cpu().float(), scale_factor=factor,
                                            mode="nearest")
    return image, prediction


def save_prediction_grid(images: list, predictions: list[dict], class_names: list[str], path: str | Path,
                         score_threshold: float = 0.5, columns: int = 4, min_size: int = 256) -> Path:
    """One PNG with the drawn images side by side, `columns` per row.

    Args:
        images: uint8 H x W x 3 arrays or [3, H, W] tensors in 0-1.
        predictions: the matching torchvision detection outputs (see `draw_predictions`).
        class_names: name of each label, index 0 the background.
        path: the PNG to write.
        score_threshold: detections scoring below this are left out.
        columns: images per row.
        min_size: images whose short side is smaller are enlarged by a whole factor to reach it, for legible text.

    Returns:
        The path written.
    """
    if not images or len(images) != len(predictions):
        raise ValueError(f"need as many predictions as images (at least one), got {len(images)} and {len(predictions)}")
    tiles = []
    for image, prediction in zip(images, predictions):
        image = to_uint8_chw(image)
        factor = max(1, math.ceil(min_size / min(image.shape[1:])))
        tiles.append(draw_predictions(*upscale(image, prediction, factor), class_names, score_threshold))
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    cell_width = max(tile.width for tile in tiles) + GRID_PADDING
    cell_height = max(tile.height for tile in tiles) + GRID_PADDING
    grid = Image.new("RGB", (columns * cell_width + GRID_PADDING, rows * cell_height + GRID_PADDING), "white")
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        grid.paste(tile, (GRID_PADDING + column * cell_width, GRID_PADDING + row * cell_height))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def coco_results_to_prediction(results: list[dict], cat_id_to_label: dict[int, int]) -> dict:
    """One image's COCO result dicts as a torchvision detection output (masks when all results have them)."""
    boxes = torch.tensor([r["bbox"] for r in results], dtype=torch.float).reshape(-1, 4)
    prediction = {
        "boxes": torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], dim=1),
        "labels": torch.tensor([cat_id_to_label[r["category_id"]] for r in results], dtype=torch.int64),
        "scores": torch.tensor([r["score"] for r in results], dtype=torch.float),
    }
    if results and all("segmentation" in r for r in results):
        masks = mask_util.decode([r["segmentation"] for r in results])
        prediction["masks"] = torch.from_numpy(masks).permute(2, 0, 1)[:, None].float()
    return prediction


def draw_results_file(gt: str | Path, dets: str | Path, images_dir: str | Path, output_dir: str | Path,
                      score_threshold: float, max_images: int, columns: int) -> Path:
    """Draws the COCO results file `dets` onto the first `max_images` images of the annotation file `gt` (their files
    under `images_dir`): one PNG per image and grid.png (`columns` images a row) in `output_dir`, of the detections
    scoring at least `score_threshold`; returns the grid's path."""
    coco = COCO(gt)
    category_ids = sorted(coco.getCatIds())
    class_names = ["__background__"] + [coco.cats[c]["name"] for c in category_ids]
    cat_id_to_label = {category_id: label for label, category_id in enumerate(category_ids, start=1)}
    results_by_image = defaultdict(list)
    for result in json.loads(Path(dets).read_text()):
        results_by_image[result["image_id"]].append(result)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, predictions = [], []
    for info in coco.loadImgs(sorted(coco.getImgIds())[:max_images]):
        image = np.asarray(Image.open(Path(images_dir) / info["file_name"]).convert("RGB"))
        prediction = coco_results_to_prediction(results_by_image[info["id"]], cat_id_to_label)
        draw_predictions(image, prediction, class_names, score_threshold).save(
            out / f"{Path(info['file_name']).stem}.png")
        images.append(image)
        predictions.append(prediction)
    grid = save_prediction_grid(images, predictions, class_names, out / "grid.png", score_threshold, columns)
    print(f"drew {len(images)} images into {out}; all of them in {grid}")
    return grid
