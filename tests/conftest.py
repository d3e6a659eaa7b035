"""Shared fixtures: tiny shapes datasets (detection and classification), the overrides that make a detector or a
classifier CPU-quick, a free port, the arguments a tool's command line parses, and a torch without the oneDNN
operators of the fast paths."""
import argparse
import importlib.util
import socket
from pathlib import Path

import pytest

from backbones import capabilities, fuse, packed_conv
from workbench.data.shapes import make_shapes
from workbench.data.shapes_classification import make_shapes_cls

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


@pytest.fixture
def free_port():
    """A TCP port nobody listens on, for torchrun's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tool_parser():
    """`tool_parser(name)`: the argument parser of `tools/<name>.py`. Only the tool's parser is used; the function
    under test is the library's."""
    def parser(name: str) -> argparse.ArgumentParser:
        path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"tool_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_args_parser()
    return parser


@pytest.fixture(scope="session")
def tool_args(tool_parser):
    """`tool_args(name, argv)`: the Namespace that `tools/<name>.py` parses from `argv`."""
    return lambda name, argv: tool_parser(name).parse_args(argv)


class WritesAFile:
    """Pickles as a call that would create a file, as a payload planted in a checkpoint would."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture
def planted_payload():
    """`planted_payload(path)`: an object whose unpickling would create `path`."""
    return WritesAFile


@pytest.fixture
def drop_onednn(monkeypatch):
    """`drop_onednn()`: from then on torch lacks `torch.ops.mkldnn._reorder_convolution_weight`, as far as
    `backbones.capabilities` can tell, and packing a weight for oneDNN fails the test."""
    def packing_fails(*args, **kwargs):
        raise AssertionError("a weight was packed for oneDNN although its operators are missing")

    def drop():
        monkeypatch.setattr(capabilities, "has_operator", lambda namespace, name, overload="default":
                            name != "_reorder_convolution_weight")
        monkeypatch.setattr(fuse, "pack_weight", packing_fails)
        monkeypatch.setattr(packed_conv, "pack_weight", packing_fails)
        capabilities.onednn_convolutions.cache_clear()

    yield drop
    capabilities.onednn_convolutions.cache_clear()
