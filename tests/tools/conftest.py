"""Shared fixtures of the tools tests: tiny shapes datasets (detection and classification) and the overrides that
make a detector or a classifier CPU-quick."""
import pytest

from make_shapes import make_shapes
from make_shapes_cls import make_shapes_cls

DEMO_CONFIG = "configs/mask_rcnn_r18_fpn_shapes_cpu.yaml"


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, 8, 4, seed=0, size=64, max_objects=2)
    return root


@pytest.fixture
def quick_overrides(tiny_shapes):
    """Overrides of the demo config: 64 px, 3 iterations, no workers, log every iteration."""
    return [
        f"data.root={tiny_shapes}", "data.batch_size=2", "data.workers=0", "model.options.min_size=64",
        "model.options.max_size=64", "solver.max_iter=3", "solver.warmup_iters=1", "train.log_period=1",
        "train.checkpoint_period=0", "eval.batch_size=4", "eval.draw_images=2",
    ]


@pytest.fixture(scope="session")
def tiny_shapes_cls(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes_cls")
    make_shapes_cls(root, 40, 20, seed=0, size=32)
    return root


@pytest.fixture(scope="session")
def quick_cls_overrides(tiny_shapes_cls):
    """Overrides of the shapes classification config: 32 px, 3 iterations of 8 images, no workers."""
    return [
        f"data.root={tiny_shapes_cls}", "data.batch_size=8", "data.workers=0", "data.augment.crop=32",
        "solver.max_iter=3", "solver.warmup_iters=0", "train.log_period=1", "train.checkpoint_period=0",
        "train.eval_period=0", "eval.batch_size=16",
    ]
