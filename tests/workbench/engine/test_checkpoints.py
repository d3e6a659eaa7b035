"""Atomic checkpoints and random-state round trips."""
import random

import numpy as np
import torch

from workbench.engine import checkpoints


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    checkpoints.save_training_state(tmp_path, "c.pth", dict(rng=checkpoints.rng_state(torch.device("cpu"))))
    expected = (torch.rand(3), np.random.rand(3), random.random())
    saved = checkpoints.load_training_state(checkpoints.last_checkpoint(tmp_path))["rng"]
    checkpoints.set_rng_state(saved, torch.device("cpu"))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_save_leaves_no_temporary_files_and_points_at_the_newest(tmp_path):
    checkpoints.save_training_state(tmp_path, "a.pth", {"iteration": 1})
    checkpoints.save_training_state(tmp_path, "b.pth", {"iteration": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pth", "b.pth", "last_checkpoint"]
    assert checkpoints.load_training_state(checkpoints.last_checkpoint(tmp_path))["iteration"] == 2
    assert checkpoints.last_checkpoint(tmp_path / "empty") is None
