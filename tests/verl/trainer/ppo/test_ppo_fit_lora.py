"""The fit loop with a LoRA actor (actor_rollout_ref.model.lora_rank > 0) on the in-process backend: GRPO with a KL
loss against the reference (the actor's base, adapters off); a run interrupted after a checkpoint resumes to exactly
the uninterrupted run (every logged metric, the merged HF export)."""
import os
import sys

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from test_ppo_fit_local import HF_TOO, read_metrics, stable  # noqa: E402
from trainer_testlib import toy_overrides  # noqa: E402

from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402

LORA = {"actor_rollout_ref.model.lora_rank": 8, "actor_rollout_ref.model.lora_alpha": 16,
        "actor_rollout_ref.actor.use_kl_loss": True, "actor_rollout_ref.actor.kl_loss_coef": 0.01}


def test_lora_grpo_resumes_after_a_crash_exactly_like_a_straight_run(tiny_model_dir, tmp_path, one_thread,
                                                                      clean_process):
    common = {**LORA, "actor_rollout_ref.actor.optim.lr": 2e-2, "trainer.total_training_steps": 4,
              "trainer.save_freq": 2, "trainer.max_actor_ckpt_to_keep": 1,
              "actor_rollout_ref.actor.checkpoint.save_contents": HF_TOO}
    straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
    run_ppo(load_config(toy_overrides(tiny_model_dir, straight, **common)))
    crash = ["+custom_reward_function.reward_kwargs.crash_after_samples=80"]  # dies in step 3 (32 samples a step)
    with pytest.raises(Exception, match="simulated crash"):
        run_ppo(load_config(toy_overrides(tiny_model_dir, interrupted, **common) + crash))
    run_ppo(load_config(toy_overrides(tiny_model_dir, interrupted, **common)))  # resume_mode=auto from step 2

    a, b = read_metrics(straight), read_metrics(interrupted)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert a[-1]["actor/kl_loss"] > 0  # the adapters moved the policy away from the reference
    for ra, rb in zip(a, b):
        assert stable(ra).keys() == stable(rb).keys()
        for key, value in stable(ra).items():
            assert rb[key] == pytest.approx(value, rel=1e-6, abs=1e-6), (ra["step"], key)
    actor = os.path.join("ckpt", "global_step_4", "actor")
    wa = load_file(os.path.join(straight, actor, "huggingface", "model.safetensors"))
    wb = load_file(os.path.join(interrupted, actor, "huggingface", "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=key)
    base = load_file(os.path.join(tiny_model_dir, "model.safetensors"))
    assert any(not torch.equal(base[k], wa[k]) for k in base)  # the merged export carries the adapters
    assert os.path.isfile(os.path.join(interrupted, actor, "lora_adapter", "adapter_model.safetensors"))
