"""Shared fixtures of the tools tests: a tiny shapes dataset and the overrides that make a detector CPU-quick."""
import pytest

from make_shapes import make_shapes

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
