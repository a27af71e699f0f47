"""A 3-step GRPO run with actor_rollout_ref.rollout.name=vllm through the real entry point (python -m
verl.trainer.main_ppo, in-process backend, CPU), on the trainer tests' toy task.

The run gets its own process: a vLLM engine keeps process-global state (parallel groups, thread settings) that must
not leak into the other tests. Runs only where vLLM is importable (scripts/test_vllm.sh).
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/test_vllm.sh runs these tests in .venv-vllm")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
sys.path.insert(0, os.path.join(ROOT, "tests", "verl", "trainer"))
from trainer_testlib import toy_overrides  # noqa: E402


@pytest.mark.slow
def test_grpo_three_steps_with_vllm_rollout(tiny_model_dir, tmp_path):
    overrides = toy_overrides(
        tiny_model_dir,
        str(tmp_path),
        **{
            "trainer.total_training_steps": 3,
            "trainer.total_epochs": 10,
            "trainer.val_before_train": True,
            "trainer.test_freq": 3,
            "actor_rollout_ref.rollout.name": "vllm",
            "actor_rollout_ref.rollout.dtype": "float32",
            "actor_rollout_ref.rollout.max_num_seqs": 64,
            "actor_rollout_ref.rollout.max_num_batched_tokens": 1024,
        },
    )
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"main_ppo exited with {proc.returncode}:\n{log[-6000:]}"

    with open(os.path.join(tmp_path, "ckpt", "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    train = [r for r in rows if "critic/score/mean" in r]
    assert [r["step"] for r in train] == [1, 2, 3]
    for row in train:
        assert row["response_length/mean"] > 0
        assert row["actor/pg_loss"] == row["actor/pg_loss"]  # finite, not NaN
        # only the vLLM rollout pushes weights: proof that it generated every step, with fresh weights each time
        assert row["perf/sync_weights_mb"] > 0 and row["timing_s/sync_weights"] > 0
    val = [r for r in rows if "val-core/toy_say/reward/mean" in r]
    assert len(val) == 2, "validation before training and at step 3"
