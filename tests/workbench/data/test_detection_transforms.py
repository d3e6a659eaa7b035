import numpy as np
import pytest
import torch

from workbench.data.coco import CocoDetection
from workbench.data.detection_transforms import boxes_from_masks, build_transforms
from workbench.data.shapes import make_shapes, rasterise, shape_outline

HEIGHT, WIDTH = 48, 64
SEEDS = range(8)
AUGMENTATIONS = {
    "flip": {"hflip_prob": 1.0},
    "multi_scale": {"hflip_prob": 0.0, "scales": [32, 40, 56, 72], "max_size": 90},
    "lsj": {"hflip_prob": 0.0, "lsj": (48, 0.5, 2.0)},
    "photometric": {"hflip_prob": 0.0, "photometric": True},
    "all": {"scales": [40, 56], "photometric": True},
}


def sample(with_masks=True):
    """An image with a circle, a rotated square and a triangle (one partly hidden), and its numpy target."""
    shapes = [("circle", 18.0, 0.0, (14.0, 14.0)), ("square", 20.0, 0.5, (44.0, 30.0)),
              ("triangle", 22.0, 1.0, (24.0, 34.0))]
    masks = np.stack([rasterise(shape_outline(name, extent, angle), np.array(centre), (HEIGHT, WIDTH))
                      for name, extent, angle, centre in shapes]).astype(np.uint8)
    masks[0] &= 1 - masks[2]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    target = {"boxes": boxes_from_masks(masks), "labels": np.array([1, 2, 3], dtype=np.int64), "image_id": 7,
              "area": masks.sum(axis=(1, 2)).astype(np.float32), "iscrowd": np.zeros(3, dtype=np.int64)}
    if with_masks:
        target["masks"] = masks
    return image, target


def assert_consistent(image, target):
    masks = target["masks"]
    assert image.dtype == torch.float32 and image.shape[0] == 3 and 0 <= image.min() and image.max() <= 1
    assert masks.dtype == torch.uint8 and masks.shape[1:] == image.shape[1:]
    assert len(target["boxes"]) == len(masks) == len(target["labels"]) == len(target["area"]) == len(target["iscrowd"])
    assert masks.flatten(1).any(dim=1).all(), "instances with empty masks are dropped"
    tight = torch.from_numpy(boxes_from_masks(masks.numpy()))
    assert torch.allclose(target["boxes"], tight, atol=1.0), (target["boxes"], tight)
    assert target["area"].tolist() == masks.sum(dim=(1, 2)).float().tolist()
    assert target["image_id"] == 7


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_boxes_stay_tight_around_the_transformed_masks(name):
    transform = build_transforms(True, **AUGMENTATIONS[name])
    for seed in SEEDS:
        transform.set_random_seed(seed)
        image, target = transform(*sample())
        assert_consistent(image, target)


def test_flip_mirrors_image_boxes_and_masks():
    image, target = sample()
    flipped, result = build_transforms(True, hflip_prob=1.0)(image, target)
    assert torch.equal(flipped, torch.from_numpy(image[:, ::-1].copy()).permute(2, 0, 1).float() / 255)
    assert torch.equal(result["masks"], torch.from_numpy(target["masks"][:, :, ::-1].copy()))
    expected = target["boxes"][:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [WIDTH, 0, WIDTH, 0]
    assert torch.allclose(result["boxes"], torch.from_numpy(expected.astype(np.float32)), atol=1e-4)
    assert result["labels"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("hflip_prob", [1e-9, 1.0])
def test_a_lone_flip_gives_albumentations_results(hflip_prob):
    image, target = sample()
    target["boxes"][0] = [5, 5, 5.5, 20]  # under 1 pixel wide: albumentations drops it
    fast = build_transforms(True, hflip_prob=hflip_prob)
    assert fast.flip_only == hflip_prob
    fast.flip_only = None  # the albumentations pipeline
    want = fast(image, target)
    fast.flip_only = hflip_prob
    got = fast(image, target)
    assert torch.equal(got[0], want[0])
    assert got[1].keys() == want[1].keys() and len(got[1]["boxes"]) == len(target["boxes"]) - 1
    for key, value in want[1].items():
        assert torch.allclose(got[1][key], value, atol=1e-4) if key == "boxes" else torch.equal(
            torch.as_tensor(got[1][key]), torch.as_tensor(value)), key


def test_multi_scale_resizes_the_short_side_within_the_long_side_limit():
    transform = build_transforms(True, **AUGMENTATIONS["multi_scale"])
    short_sides = set()
    for seed in range(16):
        transform.set_random_seed(seed)
        image, _ = transform(*sample())
        height, width = image.shape[1:]
        assert max(height, width) <= 90
        short_sides.add(height)
    assert short_sides == {32, 40, 56, round(90 * HEIGHT / WIDTH)}


def test_large_scale_jitter_outputs_squares_and_crops_objects():
    transform = build_transforms(True, **AUGMENTATIONS["lsj"])
    counts = set()
    for seed in range(16):
        transform.set_random_seed(seed)
        image, target = transform(*sample())
        assert image.shape[1:] == (48, 48)
        counts.add(len(target["boxes"]))
    assert len(counts) > 1, "crops remove some objects in some draws"


def test_photometric_jitter_leaves_geometry_alone():
    image, target = sample()
    transform = build_transforms(True, **AUGMENTATIONS["photometric"])
    changed = False
    for seed in SEEDS:
        transform.set_random_seed(seed)
        jittered, result = transform(image, target)
        assert torch.equal(result["masks"], torch.from_numpy(target["masks"]))
        assert torch.allclose(result["boxes"], torch.from_numpy(target["boxes"]), atol=1e-4)
        changed |= not torch.equal(jittered, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert changed


def test_evaluation_transform_converts_without_resizing():
    image, target = sample()
    tensor, result = build_transforms(False)(image, target)
    assert tensor.shape == (3, HEIGHT, WIDTH)
    assert torch.equal(tensor, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    for key in ("boxes", "labels", "masks", "area", "iscrowd"):
        assert torch.equal(result[key], torch.as_tensor(target[key])), key
    assert result["labels"].dtype == torch.int64 and result["boxes"].dtype == torch.float32


def test_same_seed_gives_the_same_sample():
    transform = build_transforms(True, scales=[32, 40, 56, 72], lsj=None, photometric=True)
    outputs = []
    for _ in range(2):
        transform.set_random_seed(3)
        outputs.append(transform(*sample()))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1]["boxes"], outputs[1][1]["boxes"])


def test_boxes_without_masks_follow_the_crop_and_keep_their_labels():
    transform = build_transforms(True, **AUGMENTATIONS["lsj"])
    for seed in range(16):
        transform.set_random_seed(seed)
        image, target = transform(*sample(with_masks=False))
        boxes = target["boxes"]
        assert "masks" not in target and len(boxes) == len(target["labels"]) == len(target["area"])
        assert (boxes[:, 2:] - boxes[:, :2] >= 1).all()
        assert (boxes >= 0).all() and (boxes <= 48).all()
        assert set(target["labels"].tolist()) <= {1, 2, 3}


@pytest.mark.parametrize("name", ["lsj", "multi_scale", "flip"])
def test_images_without_objects_pass_through(name):
    image, target = sample()
    empty = dict(target, boxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64),
                 masks=np.zeros((0, HEIGHT, WIDTH), np.uint8), area=np.zeros(0, np.float32),
                 iscrowd=np.zeros(0, np.int64))
    tensor, result = build_transforms(True, **AUGMENTATIONS[name])(image, empty)
    assert result["boxes"].shape == (0, 4) and result["masks"].shape == (0, *tensor.shape[1:])


@pytest.mark.parametrize("options", [{"scales": [32], "lsj": (48, 0.5, 2.0)}, {"max_size": 90},
                                     {"lsj": (48, 2.0, 0.5)}])
def test_contradictory_options_are_rejected(options):
    with pytest.raises(ValueError):
        build_transforms(True, **options)


def test_dataset_applies_the_transforms(tmp_path):
    make_shapes(tmp_path, 4, 0, seed=0, size=48)
    transform = build_transforms(True, lsj=(40, 0.5, 1.5), photometric=True)
    dataset = CocoDetection(tmp_path / "train", tmp_path / "annotations" / "instances_train.json",
                            transforms=transform)
    for index in range(len(dataset)):
        transform.set_random_seed(index)
        image, target = dataset[index]
        assert image.shape == (3, 40, 40)
        tight = torch.from_numpy(boxes_from_masks(target["masks"].numpy()))
        assert torch.allclose(target["boxes"], tight, atol=1.0)
