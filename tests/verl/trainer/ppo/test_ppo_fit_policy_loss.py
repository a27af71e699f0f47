"""The fit loop (in-process backend, toy task) with verl's loss keys: GSPO (actor.policy_loss.loss_mode) with its
paper's clip range and aggregation, and Dr. GRPO (seq-mean-token-sum-norm with actor.loss_scale_factor) learn."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402

LOSSES = {
    # two mini-batches per step: the second is off-policy, so the sequence ratios move and get clipped
    "gspo": {"actor_rollout_ref.actor.policy_loss.loss_mode": "gspo",
             "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-mean",
             "actor_rollout_ref.actor.clip_ratio_low": 3e-4, "actor_rollout_ref.actor.clip_ratio_high": 4e-4,
             "actor_rollout_ref.actor.ppo_mini_batch_size": 2,
             "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 16},
    "dr_grpo": {"actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-sum-norm",
                "actor_rollout_ref.actor.loss_scale_factor": 8, "algorithm.norm_adv_by_std_in_grpo": False},
}


@pytest.mark.parametrize("loss", LOSSES)
def test_toy_task_learns_with_verls_loss_keys(tiny_model_dir, tmp_path, one_thread, clean_process, loss):
    cfg = load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{
        "trainer.total_training_steps": 30, "trainer.total_epochs": 100, "trainer.save_freq": -1, **LOSSES[loss]}))
    run_ppo(cfg)
    with open(os.path.join(str(tmp_path), "ckpt", "metrics.jsonl")) as f:
        train = [row for row in map(json.loads, f) if "critic/score/mean" in row]
    first = sum(r["critic/score/mean"] for r in train[:5]) / 5
    last = sum(r["critic/score/mean"] for r in train[-5:]) / 5
    print(f"\n[{loss}] score {first:.2f} -> {last:.2f}, "
          f"clipfrac {[round(r['actor/pg_clipfrac'], 3) for r in train[::6]]}")
    assert last > first + 0.3, (first, last)
    if loss == "gspo":  # whole sequences are clipped on the off-policy mini-batch
        assert max(r["actor/pg_clipfrac"] for r in train) > 0.1
