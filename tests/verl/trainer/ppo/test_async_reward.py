"""The reward on a driver thread during the log-prob passes (reward_model.launch_reward_fn_async)."""
import os
import sys
import threading
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from verl.protocol import DataProto  # noqa: E402
from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402
from verl.trainer.ppo.async_reward import RewardLauncher, batch_view, launch_reward_async  # noqa: E402
from test_ppo_fit_local import read_metrics, stable  # noqa: E402


def small_batch() -> DataProto:
    return DataProto.from_dict(tensors={"responses": torch.arange(6).view(3, 2)},
                               non_tensors={"data_source": np.array(["a", "b", "c"], dtype=object)},
                               meta_info={"step": 1})


def test_batch_view_shares_tensors_but_not_containers():
    batch = small_batch()
    view = batch_view(batch)
    batch = batch.union(DataProto.from_dict(tensors={"old_log_probs": torch.zeros(3, 2)}))
    batch.meta_info["temperature"] = 1.0
    batch.non_tensor_batch["uid"] = np.array(["x", "y", "z"], dtype=object)
    assert "old_log_probs" not in view.batch.keys() and "temperature" not in view.meta_info
    assert "uid" not in view.non_tensor_batch
    assert view.batch["responses"].data_ptr() == batch.batch["responses"].data_ptr()


def test_reward_runs_while_the_caller_works_and_reports_its_timing():
    started, release = threading.Event(), threading.Event()

    def compute(batch):
        started.set()
        assert release.wait(10), "the caller never got to run while the reward was pending"
        time.sleep(0.02)  # the search itself
        return batch.batch["responses"].float(), {"n": [1] * len(batch)}

    launcher = RewardLauncher(compute)
    pending = launcher.launch(small_batch())
    assert started.wait(10)
    assert not pending.done()  # the launch returned while the reward is still running
    release.set()
    for _ in range(1000):  # the "passes" of the step: the caller goes on working until the reward is done
        if pending.done():
            break
        time.sleep(0.01)
    timing = {}
    scores, extras = pending.result(timing)
    launcher.shutdown()
    assert scores.shape == (3, 2) and extras == {"n": [1, 1, 1]}
    # the reward (blocked on the caller for a while) took longer than the wait for its finished result
    assert timing["reward"] > timing["reward_wait"] >= 0


def test_a_failing_reward_fails_the_step_with_its_own_error():
    def compute(batch):
        raise ValueError("index /data/idx is gone")

    launcher = RewardLauncher(compute)
    timing = {}
    with pytest.raises(ValueError, match="/data/idx is gone"):
        launcher.launch(small_batch()).result(timing)
    launcher.shutdown()
    assert "reward_wait" in timing


def test_async_and_inline_reward_train_the_same(tiny_model_dir, tmp_path, one_thread, clean_process):
    """Same seed, same data: the overlapped reward gives the same scores, losses and advantages as the in-line one;
    only the async run logs timing_s/reward_wait, both log timing_s/reward."""
    runs = {}
    for launch_async in (True, False):
        work = str(tmp_path / str(launch_async))
        run_ppo(load_config(toy_overrides(tiny_model_dir, work, **{
            "reward_model.launch_reward_fn_async": launch_async, "actor_rollout_ref.actor.use_kl_loss": True,
            "trainer.total_training_steps": 2, "trainer.logger": "[console,jsonl]"})))
        runs[launch_async] = read_metrics(work)
    overlapped, inline = runs[True], runs[False]
    assert len(overlapped) == len(inline) == 2
    for o, i in zip(overlapped, inline):
        assert o["timing_s/reward"] > 0 and i["timing_s/reward"] > 0
        assert "timing_s/reward_wait" in o and "timing_s/reward_wait" not in i
        assert stable(o).keys() == stable(i).keys()
        for key, value in stable(i).items():
            assert o[key] == pytest.approx(value, abs=1e-6), (i["step"], key)


@pytest.mark.parametrize("setting, backend, filter_groups, expected", [
    (None, "ray", False, True), (None, "local", False, False), (True, "local", False, True),
    (False, "ray", False, False), (True, "ray", True, False)])
def test_when_the_reward_is_overlapped(setting, backend, filter_groups, expected):
    """null: under the Ray backend only; dynamic sampling always in line."""
    config = OmegaConf.create({"reward_model": {"launch_reward_fn_async": setting}, "trainer": {"backend": backend},
                               "algorithm": {"filter_groups": {"enable": filter_groups}}})
    assert launch_reward_async(config) is expected


def test_launch_reward_fn_async_must_be_a_bool(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="launch_reward_fn_async='yes'"):
        run_ppo(load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{
            "reward_model.launch_reward_fn_async": "yes"})))
