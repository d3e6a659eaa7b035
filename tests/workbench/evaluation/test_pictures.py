import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from workbench.evaluation import pictures
from workbench.evaluation.pictures import draw_predictions, draw_results_file, save_prediction_grid

CLASS_NAMES = ["__background__", "circle", "square"]
HEIGHT, WIDTH = 48, 64


def prediction(score: float = 0.9) -> dict:
    masks = torch.zeros(1, 1, HEIGHT, WIDTH)
    masks[:, :, 15:25, 15:35] = 0.9
    return {"boxes": torch.tensor([[10.0, 10, 40, 30]]), "labels": torch.tensor([2]), "scores": torch.tensor([score]),
            "masks": masks}


def gray_image() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)


def test_draw_predictions_draws_box_and_mask_only():
    image = gray_image()
    drawn = np.asarray(draw_predictions(image, prediction(), CLASS_NAMES))
    assert drawn.shape == image.shape
    assert (drawn[30, 10:41] != image[30, 10:41]).any(axis=-1).all()  # the box's bottom edge
    assert (drawn[20, 30] != image[20, 30]).any()  # inside the mask
    assert (drawn[40:, 45:] == image[40:, 45:]).all()  # far from the detection


def test_draw_predictions_accepts_float_tensor_and_skips_low_scores():
    image = torch.full((3, HEIGHT, WIDTH), 0.5)
    drawn = draw_predictions(image, prediction(score=0.3), CLASS_NAMES, score_threshold=0.5)
    assert drawn.size == (WIDTH, HEIGHT)
    assert len(np.unique(np.asarray(drawn))) == 1  # nothing drawn


def test_classes_get_distinct_colors():
    assert len(set(pictures.class_colors(81))) == 81


def test_save_prediction_grid_upscales_and_tiles(tmp_path):
    images = [gray_image(), torch.full((3, HEIGHT, WIDTH), 0.5), gray_image()]
    path = save_prediction_grid(images, [prediction()] * 3, CLASS_NAMES, tmp_path / "grid.png", columns=2)
    factor = 6  # 48 px -> 288 px, the first whole factor reaching 256
    pad = pictures.GRID_PADDING
    grid = Image.open(path)
    assert grid.size == (2 * (factor * WIDTH + pad) + pad, 2 * (factor * HEIGHT + pad) + pad)
    tile = np.asarray(grid.convert("RGB"))[pad:pad + factor * HEIGHT, pad:pad + factor * WIDTH]
    assert (tile[30 * factor, 12 * factor:40 * factor] != 128).any(axis=-1).all()
    assert (tile[40 * factor:, 45 * factor:] == 128).all()


def test_a_coco_results_file_is_drawn_per_image_and_as_a_grid(tmp_path):
    (tmp_path / "images").mkdir()
    images, results = [], []
    for image_id in (1, 2, 3):
        Image.fromarray(gray_image()).save(tmp_path / "images" / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": HEIGHT, "width": WIDTH})
        mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8, order="F")
        mask[15:25, 15:35] = 1
        rle = mask_util.encode(mask)
        rle["counts"] = rle["counts"].decode()
        results.append({"image_id": image_id, "category_id": 7, "bbox": [10, 10, 30, 20], "score": 0.9,
                        "segmentation": rle})
    categories = [{"id": 3, "name": "circle"}, {"id": 7, "name": "square"}]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": [], "categories": categories}))
    (tmp_path / "dets.json").write_text(json.dumps(results))
    grid = draw_results_file(tmp_path / "gt.json", tmp_path / "dets.json", tmp_path / "images", tmp_path / "out",
                             score_threshold=0.5, max_images=2, columns=4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png", "grid.png"]
    drawn = np.asarray(Image.open(tmp_path / "out" / "1.png").convert("RGB"))
    assert drawn.shape == (HEIGHT, WIDTH, 3)
    assert (drawn[30, 10:41] != 128).any(axis=-1).all()
    assert Image.open(grid).size[0] > 2 * 256


def test_grid_needs_images():
    with pytest.raises(ValueError, match="at least one"):
        save_prediction_grid([], [], CLASS_NAMES, "unused.png")
