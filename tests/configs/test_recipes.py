"""Every config that cites a published result trains the recipe of the README's Recipes table: each effective value
(the merged config, and the detector it builds) equals the table's cell, so a config or a default that drifts fails.
"""
import re
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import yaml

from heads.box_loss import TORCHVISION_BETA
from heads.detectors import LEARNING_DEFAULTS
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.tasks.detection import build_model

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
SECTION = "### Recipes"


def _table() -> list[list[str]]:
    """The rows of the Recipes table, as lists of cell texts."""
    text = README.read_text()
    section = text[text.index(SECTION):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _value(cell: str):
    """The value of a cell: the YAML in its first backticks (`1/9` is a fraction); None for "—"."""
    if cell.startswith("—"):
        return None
    text = re.match(r"`([^`]*)`", cell).group(1)
    if re.fullmatch(r"\d+/\d+", text):
        return float(Fraction(text))
    return yaml.safe_load(text)


def _effective(name: str) -> dict:
    """The values a config trains and tests with: the merged config's, and those of the detector it builds."""
    config = load_config(DETECTION_DEFAULTS, ROOT / "configs" / f"{name}.yaml", ["model.backbone_weights=null"])
    torch.manual_seed(0)
    model = build_model(config, torch.device("cpu"))
    solver, options, augment = config["solver"], config["model"]["options"], config["data"]["augment"]
    rpn, roi_heads, transform = model.rpn, model.roi_heads, model.transform
    resized_by_data = options.get("skip_resize_in_training", False)
    return {
        "tag": config["model"]["backbone"].partition(".")[2],
        "data.batch_size": config["data"]["batch_size"],
        **{f"solver.{key}": solver[key] for key in ("lr", "max_iter", "steps", "warmup_iters", "warmup_factor",
                                                    "momentum", "weight_decay")},
        "bias decay": solver["weight_decay"] if solver["weight_decay_bias"] is None else solver["weight_decay_bias"],
        "norm decay": solver["weight_decay"] if solver["weight_decay_norm"] is None else solver["weight_decay_norm"],
        "train sizes": list(augment["scales"] if resized_by_data else transform.min_size),
        "train max size": augment["max_size"] if resized_by_data else transform.max_size,
        "data.augment.hflip_prob": augment["hflip_prob"],
        "anchor sizes": [size for sizes in rpn.anchor_generator.sizes for size in sizes],
        "rpn pre-NMS train": rpn.train().pre_nms_top_n(), "rpn post-NMS train": rpn.post_nms_top_n(),
        "rpn pre-NMS test": rpn.eval().pre_nms_top_n(), "rpn post-NMS test": rpn.post_nms_top_n(),
        "rpn nms": rpn.nms_thresh,
        "rpn sampling": [rpn.fg_bg_sampler.batch_size_per_image, rpn.fg_bg_sampler.positive_fraction],
        "roi sampling": [roi_heads.fg_bg_sampler.batch_size_per_image, roi_heads.fg_bg_sampler.positive_fraction],
        "rpn beta": getattr(rpn, "smooth_l1_beta", TORCHVISION_BETA),
        "box beta": getattr(roi_heads, "smooth_l1_beta", TORCHVISION_BETA),
        "roi_align aligned": roi_heads.box_roi_pool.aligned,
        "roi_align sampling": roi_heads.box_roi_pool.sampling_ratio,
        "head init": options.get("head_init") or LEARNING_DEFAULTS["head_init"],
        "test size": transform.min_size[-1], "test max size": transform.max_size,
        "size divisible": transform.size_divisible,
        "score threshold": roi_heads.score_thresh, "test nms": roi_heads.nms_thresh,
        "detections": roi_heads.detections_per_img,
    }


ROWS = _table()
CONFIGS = [re.findall(r"`([^`]+)`", cell) for cell in ROWS[1][2:]]
CASES = [(name, column) for column, names in enumerate(CONFIGS) for name in names]


def test_the_table_names_every_cited_config_once():
    assert ROWS[1][1] == "`config`"
    cited = sorted(path.stem for path in (ROOT / "configs").glob("*_coco.yaml"))
    assert sorted(name for name, _ in CASES) == cited


@pytest.mark.parametrize("name,column", CASES, ids=[name for name, _ in CASES])
def test_config_trains_the_recipe_of_the_table(name, column):
    effective = _effective(name)
    rows = [row for row in ROWS[2:] if row[1]]
    assert {row[1].strip("`") for row in rows} == set(effective), "every effective value has its row, and back"
    differences = []
    for row in rows:
        expected = _value(row[2 + column])
        if expected is None:
            continue
        actual = effective[row[1].strip("`")]
        if actual != (expected if isinstance(expected, (str, bool)) else pytest.approx(expected, rel=1e-9)):
            differences.append(f"{row[0]} ({row[1]}): the table says {expected!r}, {name} trains {actual!r}")
    assert not differences, "\n".join(differences)
