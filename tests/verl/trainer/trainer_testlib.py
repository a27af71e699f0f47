"""A toy RL task for trainer tests: 'say <word> <word> <word>' prompts.

The learning test rewards filling the answer with one word (``repeat_compute_score``): a random tiny model
scores ~0.22 with a graded signal in every sample, and GRPO lifts it to ~1.0 within ~25 steps (seeds 1-3).
Rewarding only the asked-for word (``toy_compute_score``) starts at ~1/vocab: no signal for 30 steps.
This file is also the custom reward function file the tests pass as custom_reward_function.path.
"""
from __future__ import annotations

import os

import pandas as pd

TARGET_WORDS = ("red", "blue", "green", "shoes")


def toy_compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's per-sample signature: fraction of response words equal to ground_truth (0 for an empty answer)."""
    words = solution_str.split()
    return sum(w == ground_truth for w in words) / max(len(words), 1)


_calls = {"samples": 0}


def repeat_compute_score(data_source, solution_str, ground_truth, extra_info=None, crash_after_samples=None):
    """'Fill the answer with one word': half for the number of words (of 8), half for the copies of the most
    frequent word (of 8). Random tokens score ~0.22; ' red red red red red red red red' scores 1.0.

    ``crash_after_samples`` (a reward_kwarg) raises once that many samples were scored: a run that dies
    mid-training, for the resume test.
    """
    _calls["samples"] += 1
    if crash_after_samples is not None and _calls["samples"] > crash_after_samples:
        raise RuntimeError("simulated crash")
    words = solution_str.split()
    if not words:
        return 0.0
    return 0.5 * min(len(words), 8) / 8 + 0.5 * min(max(words.count(w) for w in set(words)), 8) / 8


IMPOSSIBLE = "impossible"


def half_impossible_score(data_source, solution_str, ground_truth, extra_info=None, crash_after_samples=None):
    """``repeat_compute_score``, except that a prompt whose ground truth is IMPOSSIBLE scores 0 whatever the answer:
    its group never has a spread (the dynamic-sampling tests; see write_toy_parquet's impossible_every)."""
    score = repeat_compute_score(data_source, solution_str, ground_truth, extra_info, crash_after_samples)
    return 0.0 if ground_truth == IMPOSSIBLE else score


def toy_compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs):
    """The batch signature, with a dict result (score + extras) per sample."""
    return [{"score": toy_compute_score(s, r, g), "hit": float(g in r.split())}
            for s, r, g in zip(data_sources, solution_strs, ground_truths)]


def write_toy_parquet(path: str, n: int, words=TARGET_WORDS, data_source: str = "toy_say",
                      impossible_every: int = 0) -> str:
    """``n`` rows of verl's schema asking to repeat a word; returns ``path``. With ``impossible_every=k``, rows
    k-1, 2k-1, ... have the ground truth IMPOSSIBLE (k=2: every other row)."""
    rows = []
    for i in range(n):
        word = words[i % len(words)]
        impossible = impossible_every > 0 and i % impossible_every == impossible_every - 1
        rows.append({
            "data_source": data_source,
            "prompt": [{"role": "user", "content": f"say {word} {word} {word}"}],
            "ability": "toy",
            "reward_model": {"style": "rule", "ground_truth": IMPOSSIBLE if impossible else word},
            "extra_info": {"split": "train", "index": i},
        })
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return path


def toy_overrides(model_dir: str, work_dir: str, train_rows: int = 16, val_rows: int = 4, **extra) -> list[str]:
    """Hydra overrides for a tiny in-process GRPO run (4 prompts x 8 samples, 8 new tokens) on the toy task;
    ``extra`` adds or replaces keys."""
    train = write_toy_parquet(os.path.join(work_dir, "train.parquet"), train_rows)
    val = write_toy_parquet(os.path.join(work_dir, "val.parquet"), val_rows)
    base = {
        "data.train_files": train,
        "data.val_files": val,
        "data.train_batch_size": 4,
        "data.max_prompt_length": 16,
        "data.max_response_length": 8,
        "actor_rollout_ref.model.path": model_dir,
        "actor_rollout_ref.model.enable_gradient_checkpointing": False,
        "actor_rollout_ref.actor.optim.lr": 1e-2,
        "actor_rollout_ref.actor.ppo_mini_batch_size": 4,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 32,
        "actor_rollout_ref.rollout.n": 8,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 32,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": 32,
        "critic.model.path": model_dir,
        "critic.model.enable_gradient_checkpointing": False,
        "critic.optim.lr": 1e-3,
        "critic.ppo_micro_batch_size_per_gpu": 32,
        "algorithm.adv_estimator": "grpo",
        "custom_reward_function.path": os.path.abspath(__file__),
        "custom_reward_function.name": "repeat_compute_score",
        "reward_model.num_examine": 0,
        "reward_model.val_num_examine": 0,
        "trainer.backend": "local",
        "trainer.device": "cpu",
        "trainer.n_gpus_per_node": 1,
        "trainer.logger": "[console]",
        "trainer.total_epochs": 1,
        "trainer.val_before_train": False,
        "trainer.default_local_dir": os.path.join(work_dir, "ckpt"),
        "trainer.project_name": "toy",
        "trainer.experiment_name": "toy",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]



# Metric namespaces of verl's trainer and its DAPO recipe (train/num_gen_batches), plus reward/<key>/... for scorer
# extras, which this codebase adds.
VERL_METRIC_PREFIXES = ("actor/", "critic/", "response_length/", "prompt_length/", "timing_s/",
                        "timing_per_token_ms/", "perf/", "training/", "val-core/", "val-aux/", "global_seqlen/",
                        "reward/", "train/")


def assert_verl_metric_names(rows: list[dict]) -> None:
    """Every key of every metrics.jsonl row is in one of verl's namespaces, and the rollout's own timing is
    logged as timing_s/generate_sequences (as verl does), not under a name of its own."""
    odd = sorted({k for row in rows for k in row if k != "step" and not k.startswith(VERL_METRIC_PREFIXES)})
    assert not odd, f"metric names outside verl's namespaces: {odd}"
    train = [row for row in rows if "timing_s/step" in row]
    assert train and all(row["timing_s/generate_sequences"] > 0 for row in train)
