"""PPO (GAE) on Ray with 2 CPU workers (gloo): actor + rollout + ref and critic colocated, 3 steps, every trainable
parameter changes. (GRPO runs the same worker calls minus the critic; it is covered in-process by the toy test.)"""
import json
import os
import sys

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402

RAY = {"trainer.backend": "ray", "trainer.n_gpus_per_node": 2, "trainer.total_training_steps": 3,
       "trainer.balance_batch": True, "+ray_init.include_dashboard": False,
       "actor_rollout_ref.actor.ppo_mini_batch_size": 2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 4,
       "critic.ppo_micro_batch_size_per_gpu": 4, "actor_rollout_ref.rollout.n": 4,
       "actor_rollout_ref.rollout.log_prob_micro_batch_size": 8,  # legacy global key: 4 per worker
       "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": "null"}


@pytest.fixture(scope="module")
def ray_session():
    """A Ray instance for this module (or the one already running), with CPU bundles to spare."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False)
    yield
    if started:
        ray.shutdown()


def weights(path):
    return load_file(os.path.join(path, "model.safetensors"))


def assert_all_changed(before: dict, after: dict, what: str):
    """Every tensor of ``before`` differs in ``after`` (an export may add a tied lm_head.weight)."""
    assert set(before) <= set(after)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"{what}: parameters that did not change: {unchanged}"


def steps_logged(work_dir):
    with open(os.path.join(work_dir, "ckpt", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_gae_three_steps_on_two_ray_workers(tiny_model_dir, tmp_path, ray_session):
    work = str(tmp_path)
    run_ppo(load_config(toy_overrides(tiny_model_dir, work, **RAY, **{
        "algorithm.adv_estimator": "gae", "trainer.save_freq": 2, "actor_rollout_ref.actor.use_kl_loss": True})))
    rows = steps_logged(work)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["critic/grad_norm"] > 0 and r["actor/grad_norm"] > 0 for r in rows)
    assert "critic/vf_explained_var" in rows[-1] and "global_seqlen/balanced_max" in rows[0]
    step = os.path.join(work, "ckpt", "global_step_{}", "{}", "huggingface")
    assert_all_changed(weights(tiny_model_dir), weights(step.format(3, "actor")), "actor")
    # the critic's value head starts random, so compare its step-2 and step-3 checkpoints
    assert_all_changed(weights(step.format(2, "critic")), weights(step.format(3, "critic")), "critic")
