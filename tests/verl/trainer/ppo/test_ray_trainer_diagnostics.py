"""Per-step diagnostics of the fit loop (tiny in-process GRPO): the logged entropy is the rollout policy's (the
old-log-prob pass's), the update's own is logged apart; clip fractions and group spread every step; the actor
starts updating at step trainer.critic_warmup, as in verl."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from verl.protocol import DataProto  # noqa: E402
from verl.trainer.main_ppo import create_trainer, load_config  # noqa: E402


def _trainer(tiny_model_dir, work_dir, **extra):
    trainer = create_trainer(load_config(toy_overrides(tiny_model_dir, work_dir, **extra)))
    trainer.init_workers()
    return trainer


def _prompts(trainer) -> DataProto:
    return DataProto.from_single_dict(next(iter(trainer.train_dataloader)))


def test_logged_entropy_is_the_old_log_prob_passes(tiny_model_dir, tmp_path, one_thread, clean_process):
    """Two mini-batches (the second updates an already-stepped policy) and seq-mean-token-sum aggregation: the
    update's entropy (a sum per sequence, partly after a step) differs from the rollout policy's token mean, and
    must not overwrite it."""
    trainer = _trainer(tiny_model_dir, str(tmp_path), **{
        "actor_rollout_ref.actor.ppo_mini_batch_size": 2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 16,
        "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-sum"})
    passes = []
    compute_log_prob = trainer.actor_rollout_wg.compute_log_prob

    def spy(batch):
        out = compute_log_prob(batch)
        passes.append((out.batch["entropys"].clone(), batch.batch["response_mask"].clone()))
        return out

    trainer.actor_rollout_wg.compute_log_prob = spy
    try:
        trainer.global_steps = 1
        _, metrics = trainer.train_step(_prompts(trainer), {})
    finally:
        trainer.shutdown()
    (entropys, mask), = passes
    rollout_entropy = ((entropys * mask).sum() / mask.sum()).item()
    assert metrics["actor/entropy"] == pytest.approx(rollout_entropy, rel=1e-6)
    update_entropy = metrics["actor/entropy_loss"]  # mean over the two mini-batches of the per-sequence sums
    assert update_entropy > 2 * rollout_entropy, (update_entropy, rollout_entropy)
    for key in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["actor/pg_clipfrac"] > 0  # the second mini-batch's ratios moved past the clip range (lr 1e-2)


def test_actor_starts_updating_at_step_critic_warmup(tiny_model_dir, tmp_path, one_thread, clean_process):
    """verl updates the actor when critic_warmup <= global_steps (steps count from 1): with critic_warmup 2, not at
    step 1, from step 2 on; every step logs the clip fractions (when the actor updates), the response-length clip
    ratio and the zero-spread group fraction."""
    trainer = _trainer(tiny_model_dir, str(tmp_path), **{"trainer.critic_warmup": 2,
                                                         "trainer.total_training_steps": 10})
    try:
        logged = []
        for step in (1, 2):
            trainer.global_steps = step
            logged.append(trainer._run_step(_prompts(trainer)))
    finally:
        trainer.shutdown()
    first, second = logged
    assert not any(k.startswith("actor/pg_") for k in first) and "timing_s/update_actor" not in first
    for key in ("actor/pg_loss", "actor/pg_clipfrac", "actor/pg_clipfrac_lower", "timing_s/update_actor"):
        assert key in second, key
    for row in logged:
        assert 0 <= row["response_length/clip_ratio"] <= 1
        assert 0 <= row["critic/score/zero_spread_group_frac"] <= 1
