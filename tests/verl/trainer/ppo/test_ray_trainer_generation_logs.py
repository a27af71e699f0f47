"""Validation and rollout dumps of a real tiny run (in-process backend): <step>.jsonl files under
trainer.validation_data_dir / rollout_data_dir with verl's columns and the scorer's extras, the val/generations table
with the task's describe_generations columns in tensorboard and an offline wandb run, scorer extras named in
reward_model.val_core_extra_keys logged as val-core, categorical extras as val-aux fractions.

This file is also the custom reward function file the run uses (score_with_extras + describe_generations)."""
import glob
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "utils"))
from test_generations_logger import read_tensorboard_texts  # noqa: E402
from trainer_testlib import toy_overrides  # noqa: E402

from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402
from verl.trainer.ppo.generation_logs import pick_logged_rows  # noqa: E402

VAL_ROWS, SHOWN = 6, 3


def score_with_extras(data_sources, solution_strs, ground_truths, extra_infos, **kwargs):
    """Batch scorer: the fraction of words equal to the ground truth, with per-sample extras."""
    results = []
    for solution, truth in zip(solution_strs, ground_truths):
        words = solution.split()
        hits = sum(w == truth for w in words)
        results.append({"score": hits / max(len(words), 1), "words": len(words), "hit": hits > 0,
                        "reason": "hit" if hits else "miss", "first_word": words[0] if words else None})
    return results


def describe_generations(rows, **kwargs):
    """Display columns for the shown rows (the test sees from "shout" which rows were described)."""
    return [{"first": row["first_word"], "shout": row["output"].upper()} for row in rows]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_val_and_rollout_dumps_table_and_core_metrics(tiny_model_dir, tmp_path, one_thread, clean_process, capsys,
                                                       monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    config = load_config(toy_overrides(tiny_model_dir, str(tmp_path), val_rows=VAL_ROWS, **{
        "custom_reward_function.path": os.path.abspath(__file__),
        "custom_reward_function.name": "score_with_extras",
        "reward_model.reward_manager": "batch",
        "reward_model.val_core_extra_keys": "[hit,words]",
        "trainer.default_local_dir": str(run_dir),
        "trainer.logger": "[console,tensorboard,wandb]",
        "trainer.val_before_train": True, "trainer.test_freq": 1, "trainer.total_training_steps": 1,
        "trainer.log_val_generations": SHOWN,
        "trainer.rollout_data_dir": str(tmp_path / "rollouts"),
        # sampled, so that the random tiny model writes words (greedy, it writes newlines)
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True,
        "actor_rollout_ref.rollout.val_kwargs.temperature": 1.0}))
    metrics = run_ppo(config)

    # Validation: every sample of every validation (step 0 before training, step 1 after) in <step>.jsonl.
    val_dir = run_dir / "validation_generations"  # the default: a folder in the run's folder
    assert sorted(os.listdir(val_dir)) == ["0.jsonl", "1.jsonl"]
    rows = read_jsonl(val_dir / "1.jsonl")
    assert len(rows) == VAL_ROWS
    for row in rows:
        assert {"input", "output", "score", "step", "data_source", "words", "hit", "reason"} <= set(row)
        assert row["step"] == 1 and row["data_source"] == "toy_say" and row["input"].startswith("user\nsay ")
        assert row["words"] == len(row["output"].split())
    shown = pick_logged_rows([r["input"] for r in rows], SHOWN)
    described = [i for i, r in enumerate(rows) if "shout" in r]
    assert sorted(described) == sorted(shown)
    assert all(rows[i]["shout"] == rows[i]["output"].upper() for i in described)

    # Metrics: the declared extras under val-core (no /mean), the rest under val-aux, reasons as fractions.
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows)  # noqa: E731
    assert metrics["val-core/toy_say/hit"] == pytest.approx(mean("hit"))
    assert metrics["val-core/toy_say/words"] == pytest.approx(mean("words"))
    assert metrics["val-core/toy_say/reward/mean"] == pytest.approx(mean("score"))
    assert "val-aux/toy_say/words/mean" not in metrics
    fractions = {k: v for k, v in metrics.items() if k.startswith("val-aux/toy_say/reason/")}
    assert fractions and sum(fractions.values()) == pytest.approx(1.0)
    assert metrics["reward/words/max"] >= metrics["reward/words/mean"] >= metrics["reward/words/min"]

    # Training samples of step 1 (rollout.n x train_batch_size), with the extras that belong to each row.
    rollouts = read_jsonl(tmp_path / "rollouts" / "1.jsonl")
    assert len(rollouts) == 4 * 8
    for row in rollouts:
        assert row["step"] == 1 and row["words"] == len(row["output"].split())
        assert row["score"] == pytest.approx(sum(w == row["input"].split()[-1] for w in row["output"].split())
                                             / max(len(row["output"].split()), 1), abs=1e-6)

    # The table: this validation's shown rows as tensorboard text, with the hook's columns between output and score.
    texts = read_tensorboard_texts(str(run_dir / "tensorboard"), "val/generations")
    assert sorted(texts) == [0, 1]
    lines = texts[1].splitlines()
    assert lines[0] == "| step | data_source | input | output | first | shout | score |" and len(lines) == 2 + SHOWN
    tables = [json.load(open(f)) for f in glob.glob(str(run_dir / "wandb" / "offline-run-*" / "files" / "media" /
                                                          "table" / "val" / "generations_*.table.json"))]
    last = max(tables, key=lambda t: len(t["data"]))
    assert last["columns"] == ["step", "data_source", "input", "output", "first", "shout", "score"]
    assert [row[0] for row in last["data"]] == [0] * SHOWN + [1] * SHOWN  # every validation's rows so far
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[val] score=")]
    assert len(printed) == 2 * SHOWN


def test_bad_generation_log_keys_are_named(tiny_model_dir, tmp_path):
    from verl.trainer.config_check import ConfigError, validate_config

    for key, value in (("trainer.log_val_generations", -1), ("reward_model.val_core_extra_keys", "ndcg"),
                       ("trainer.rollout_data_dir", "''")):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            validate_config(load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{key: value})))
