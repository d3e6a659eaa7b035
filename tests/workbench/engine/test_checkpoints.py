"""Atomic checkpoints and random-state round trips."""
import errno
import os
import pickle
import random

import numpy as np
import pytest
import torch

from workbench.engine import checkpoints
from workbench.tasks.classification_model import load_classifier


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


def test_only_the_newest_periodic_checkpoints_and_the_pointed_one_are_kept(tmp_path):
    for iteration in (5, 10, 15, 20):
        checkpoints.save_training_state(tmp_path, f"checkpoint_{iteration:07d}.pth", {"iteration": iteration})
    (tmp_path / "model_final.pth").write_bytes(b"")
    checkpoints.remove_older_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_0000015.pth", "checkpoint_0000020.pth", "last_checkpoint", "model_final.pth"]
    (tmp_path / checkpoints.LAST_CHECKPOINT).write_text("checkpoint_0000015.pth")  # a resume from an older one
    checkpoints.save_training_state(tmp_path, "checkpoint_10000000.pth", {"iteration": 10**7})
    (tmp_path / checkpoints.LAST_CHECKPOINT).write_text("checkpoint_0000015.pth")
    checkpoints.remove_older_checkpoints(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == ["checkpoint_0000015.pth",
                                                                     "checkpoint_10000000.pth"]


def test_a_planted_training_checkpoint_is_refused_and_its_code_does_not_run(tmp_path, planted_payload):
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "iteration": 3, "payload": planted_payload(marker)}, tmp_path / "checkpoint.pth")
    for load in (checkpoints.load_training_state, load_classifier):
        with pytest.raises(ValueError, match=r"checkpoint.pth: refused: it holds objects other than tensors") as error:
            load(tmp_path / "checkpoint.pth")
        assert isinstance(error.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()


def test_a_truncated_or_empty_checkpoint_is_named(tmp_path):
    torch.save({"model": {"w": torch.zeros(1000)}, "iteration": 1}, tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    for name, content in (("truncated.pth", data[: len(data) // 2]), ("empty.pth", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name}: not a readable torch checkpoint"):
            checkpoints.load_training_state(tmp_path / name)


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    checkpoints.save_training_state(tmp_path, "c.pth", {"iteration": 1})

    def fills_the_disk(obj, file):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", fills_the_disk)
    with pytest.raises(ValueError, match=r"cannot write .*c.pth: \[Errno 28\] No space left on device; the previous "
                                         r"checkpoint is intact"):
        checkpoints.save_training_state(tmp_path, "c.pth", {"iteration": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pth", "last_checkpoint"]
    assert checkpoints.load_training_state(checkpoints.last_checkpoint(tmp_path))["iteration"] == 1


def test_one_run_at_a_time_in_an_output_folder(tmp_path):
    held = checkpoints.lock_output_dir(tmp_path)
    with pytest.raises(ValueError, match=rf"another run \(process {os.getpid()}\) is writing into {tmp_path}"):
        checkpoints.lock_output_dir(tmp_path)
    held.close()
    checkpoints.lock_output_dir(tmp_path).close()


def test_a_detector_checkpoint_given_as_a_classifier_is_named(tmp_path):
    torch.save({"model": {}, "iteration": 3, "config": {"model": {"kind": "mask_rcnn"}}}, tmp_path / "det.pth")
    with pytest.raises(ValueError, match=r"det.pth is a train_det.py checkpoint \(a mask_rcnn detector\), not a "
                                         r"classifier; evaluate it with tools/eval_det.py"):
        load_classifier(tmp_path / "det.pth")
