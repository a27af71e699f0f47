"""verl/utils/checkpoint/trainer_checkpoint.py: the latest tracker, resume paths, pruning, driver state."""
import random

import pytest
import torch

from verl.utils.checkpoint import trainer_checkpoint as ckpt


def test_tracker_resume_paths_and_pruning(tmp_path):
    root = str(tmp_path)
    assert ckpt.resolve_resume_path("auto", root) is None  # nothing saved yet: from scratch
    for step in (2, 4, 6):
        ckpt.save_driver_state(ckpt.step_dir(root, step), {"epoch": 0, "batches_done": step}, {"global_step": step})
        ckpt.write_tracker(root, step)
    assert ckpt.resolve_resume_path("auto", root) == ckpt.step_dir(root, 6)
    assert ckpt.resolve_resume_path("disable", root) is None
    assert ckpt.resolve_resume_path(ckpt.step_dir(root, 4), root) == ckpt.step_dir(root, 4)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ckpt.resolve_resume_path(str(tmp_path / "global_step_9"), root)
    with pytest.raises(ValueError, match="global_step_<N>"):
        ckpt.parse_global_step(str(tmp_path))
    assert ckpt.prune_checkpoints(root, 2) == [ckpt.step_dir(root, 2)]
    assert [s for s, _ in ckpt.list_step_dirs(root)] == [4, 6]


def test_driver_state_round_trip_restores_rng(tmp_path):
    path = str(tmp_path / "global_step_1")
    torch.manual_seed(3)
    random.seed(3)
    ckpt.save_driver_state(path, {"epoch": 1, "batches_done": 2}, {"global_step": 1, "kl_coef": 0.5})
    expected = (torch.rand(3), random.random())
    loader_state, state = ckpt.load_driver_state(path)
    ckpt.set_rng_state(state["rng"])
    assert loader_state == {"epoch": 1, "batches_done": 2} and state["kl_coef"] == 0.5
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    (tmp_path / "global_step_1" / "data.pt").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete: data.pt is missing"):
        ckpt.load_driver_state(path)
