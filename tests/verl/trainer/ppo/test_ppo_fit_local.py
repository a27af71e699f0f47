"""The fit loop on the in-process backend: a toy task learns; an interrupted run resumes exactly."""
import glob
import json
import os
import sys

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import assert_verl_metric_names, toy_overrides  # noqa: E402

from verl.model_merger import merge_fsdp_checkpoint  # noqa: E402
from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402

# checkpoints that also write the HF weights into global_step_N/<role>/huggingface/
HF_TOO = "[model,optimizer,extra,hf_model]"
# differ run to run by nature
VOLATILE_PREFIXES = ("timing_s/", "timing_per_token_ms/", "perf/")


def read_metrics(work_dir):
    with open(os.path.join(work_dir, "ckpt", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def stable(row):
    return {k: v for k, v in row.items() if not k.startswith(VOLATILE_PREFIXES)}


def test_grpo_toy_task_reward_rises_within_30_steps(tiny_model_dir, tmp_path, one_thread, clean_process):
    cfg = load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{
        "trainer.total_training_steps": 30, "trainer.total_epochs": 100, "trainer.val_before_train": True,
        "trainer.test_freq": 15, "trainer.save_freq": 30}))
    run_ppo(cfg)
    rows = read_metrics(str(tmp_path))
    assert_verl_metric_names(rows)
    train = [r for r in rows if "critic/score/mean" in r]
    assert [r["step"] for r in train] == list(range(1, 31))
    first = sum(r["critic/score/mean"] for r in train[:5]) / 5
    last = sum(r["critic/score/mean"] for r in train[-5:]) / 5
    assert last > first + 0.4 and last > 0.8, (first, last)  # ~0.22 -> ~0.95
    val = [r["val-core/toy_say/reward/mean"] for r in rows if "val-core/toy_say/reward/mean" in r]
    assert len(val) == 3 and val[-1] > max(val[0], 0.8), val  # greedy; before training, step 15, step 30
    actor_dir = os.path.join(str(tmp_path), "ckpt", "global_step_30", "actor")
    assert not glob.glob(os.path.join(actor_dir, "huggingface", "*.safetensors"))  # no hf_model: config only
    merged = merge_fsdp_checkpoint(actor_dir, str(tmp_path / "merged"))
    exported = load_file(os.path.join(merged, "model.safetensors"))
    initial = load_file(os.path.join(tiny_model_dir, "model.safetensors"))
    assert [k for k in initial if torch.equal(initial[k], exported[k])] == []  # every parameter trained
    step_times = [r["timing_s/step"] for r in train]
    print(f"\n[toy] score {first:.2f} -> {last:.2f}, val {val}, median step {sorted(step_times)[15]:.3f}s, "
          f"peak rss {train[-1]['perf/cpu_peak_rss_gb']:.2f} GB")


def test_resume_after_a_crash_matches_a_straight_run(tiny_model_dir, tmp_path, one_thread, clean_process):
    """GAE with KL in the reward (adaptive) and a KL loss: actor, ref, critic and driver state all resume."""
    common = {"algorithm.adv_estimator": "gae", "algorithm.use_kl_in_reward": True,
              "algorithm.kl_ctrl.type": "adaptive", "actor_rollout_ref.actor.use_kl_loss": True,
              "actor_rollout_ref.rollout.n": 2, "actor_rollout_ref.actor.ppo_mini_batch_size": 2,
              "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 2, "critic.ppo_micro_batch_size_per_gpu": 2,
              "actor_rollout_ref.actor.optim.lr": 1e-3, "trainer.total_training_steps": 4,
              "trainer.save_freq": 2, "trainer.max_actor_ckpt_to_keep": 1, "trainer.max_critic_ckpt_to_keep": 1,
              "actor_rollout_ref.actor.checkpoint.save_contents": HF_TOO, "critic.checkpoint.save_contents": HF_TOO}
    straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
    run_ppo(load_config(toy_overrides(tiny_model_dir, straight, **common)))

    crash = ["+custom_reward_function.reward_kwargs.crash_after_samples=16"]  # dies in step 3 (8 samples a step)
    with pytest.raises(Exception, match="simulated crash"):
        run_ppo(load_config(toy_overrides(tiny_model_dir, interrupted, **common) + crash))
    ckpt_dir = os.path.join(interrupted, "ckpt")
    assert open(os.path.join(ckpt_dir, "latest_checkpointed_iteration.txt")).read() == "2"
    run_ppo(load_config(toy_overrides(tiny_model_dir, interrupted, **common)))  # resume_mode=auto

    assert sorted(os.listdir(ckpt_dir)) == ["global_step_4", "latest_checkpointed_iteration.txt", "metrics.jsonl"]
    a, b = read_metrics(straight), read_metrics(interrupted)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert stable(ra).keys() == stable(rb).keys()
        for key, value in stable(ra).items():
            assert rb[key] == pytest.approx(value, rel=1e-6, abs=1e-6), (ra["step"], key)
    for role in ("actor", "critic"):
        wa = load_file(os.path.join(straight, "ckpt", "global_step_4", role, "huggingface", "model.safetensors"))
        wb = load_file(os.path.join(ckpt_dir, "global_step_4", role, "huggingface", "model.safetensors"))
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=f"{role} {key}")


def test_remax_uses_the_greedy_response_as_baseline(tiny_model_dir, tmp_path, one_thread, clean_process):
    """ReMax is the estimator with driver-side extras (a greedy generation and its reward per prompt)."""
    metrics = run_ppo(load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{
        "algorithm.adv_estimator": "remax", "trainer.total_training_steps": 1})))
    assert "timing_s/gen_max" in metrics
    # advantage = reward-to-go - baseline, and the baseline (a greedy response's score) is >= 0 here
    assert metrics["critic/advantages/mean"] <= metrics["critic/returns/mean"]
    assert metrics["critic/advantages/max"] > 0


def test_one_update_per_batch_skips_the_old_log_prob_pass_with_the_same_training(tiny_model_dir, tmp_path, one_thread,
                                                                                   clean_process):
    """GRPO with ppo_mini_batch_size == train_batch_size (and a KL loss to the reference): recompute_old_log_prob
    auto skips the separate pass, the forced pass (true) runs it; both train the same weights and report the same
    losses and entropy."""
    runs = {}
    for mode in ("true", "auto"):
        work = str(tmp_path / mode)
        run_ppo(load_config(toy_overrides(tiny_model_dir, work, **{
            "actor_rollout_ref.actor.recompute_old_log_prob": mode, "actor_rollout_ref.actor.use_kl_loss": True,
            "actor_rollout_ref.actor.optim.lr": 1e-3, "trainer.total_training_steps": 2, "trainer.save_freq": 2,
            "actor_rollout_ref.actor.checkpoint.save_contents": HF_TOO})))
        weights = load_file(os.path.join(work, "ckpt", "global_step_2", "actor", "huggingface", "model.safetensors"))
        runs[mode] = (read_metrics(work), weights)
    (forced, forced_weights), (auto, auto_weights) = runs["true"], runs["auto"]
    assert all("timing_s/old_log_prob" in r for r in forced) and not any("timing_s/old_log_prob" in r for r in auto)
    for fr, ar in zip(forced, auto):
        for key in ("actor/pg_loss", "actor/entropy", "actor/kl_loss", "critic/score/mean"):
            assert ar[key] == pytest.approx(fr[key], abs=1e-6), (fr["step"], key)
    for key in forced_weights:
        torch.testing.assert_close(auto_weights[key], forced_weights[key], atol=1e-6, rtol=0, msg=key)
