"""The two trainer command lines of the demo (printed before they run, so a reader can rerun them by hand)."""
from __future__ import annotations

import sys

from recr1.demo.paths import DemoPaths
from recr1.demo.settings import DemoSettings

RL_PRESET = "recr1_demo_cpu"  # configs/recr1_demo_cpu.yaml
# DAPO's dynamic sampling as the demo runs it (rl_filter_groups): at most 4 rounds of rl_prompts requests a step,
# then train on the groups with a reward spread that there are
FILTER_GROUPS = {
    "algorithm.filter_groups.enable": True,
    "algorithm.filter_groups.metric": "seq_reward",
    "algorithm.filter_groups.max_num_gen_batches": 4,
    "algorithm.filter_groups.on_exhausted": "train",
}


def sft_command(s: DemoSettings, paths: DemoPaths, max_length: int) -> list[str]:
    """``python -m verl.trainer.main_sft ...``: teach the answer format on naive, target-free answers."""
    overrides = {
        "data.train_files": paths.sft_data("train"),
        "data.val_files": paths.sft_data("val"),
        "data.prompt_key": "prompt",
        "data.response_key": "response",
        "data.max_length": max_length,
        "data.truncation": "error",
        "data.train_batch_size": s.sft_batch,
        "data.micro_batch_size_per_gpu": s.sft_batch,
        "model.partial_pretrain": paths.init_model,
        "model.enable_gradient_checkpointing": False,
        "optim.lr": s.sft_lr,
        "optim.warmup_steps_ratio": s.sft_warmup,
        "optim.lr_scheduler": "cosine",
        "optim.weight_decay": 0.0,
        "trainer.device": "cpu",
        "trainer.total_training_steps": s.sft_steps,
        "trainer.save_freq": -1,
        "trainer.test_freq": -1,
        "trainer.logger": "[console]",
        "trainer.project_name": "recr1-demo",
        "trainer.experiment_name": "sft",
        "trainer.default_local_dir": paths.sft_ckpt,
        "trainer.seed": s.seed,
        "hydra.run.dir": f"{paths.root}/sft/hydra",
    }
    return [sys.executable, "-m", "verl.trainer.main_sft", *(f"{k}={v}" for k, v in overrides.items())]


def rl_command(s: DemoSettings, paths: DemoPaths, prompt_length: int) -> list[str]:
    """``python -m verl.trainer.main_ppo --config-name recr1_demo_cpu ...``: GRPO from the SFT model."""
    save_freq = min(100, s.rl_steps)  # a killed demo resumes from the last one (trainer.resume_mode=auto)
    overrides = {
        "data.train_files": paths.split("train"),
        "data.val_files": paths.rl_val,
        "data.train_batch_size": s.rl_prompts,
        "data.max_prompt_length": prompt_length,
        "data.max_response_length": s.response_length,
        "actor_rollout_ref.model.path": paths.sft_model(s.sft_steps),
        "actor_rollout_ref.actor.optim.lr": s.rl_lr,
        "actor_rollout_ref.actor.ppo_mini_batch_size": s.rl_prompts,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": s.rl_prompts * s.rl_n,
        "actor_rollout_ref.rollout.n": s.rl_n,
        "actor_rollout_ref.rollout.temperature": s.rl_temperature,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": s.rl_prompts * s.rl_n,
        "custom_reward_function.reward_kwargs.index": paths.index,
        "custom_reward_function.reward_kwargs.dedup_terms": s.dedup_terms,
        "trainer.total_training_steps": s.rl_steps,
        "trainer.test_freq": s.test_freq,
        "trainer.save_freq": save_freq,
        "trainer.max_actor_ckpt_to_keep": 1,
        "trainer.resume_mode": "auto",
        "trainer.seed": s.seed,
        "trainer.default_local_dir": paths.rl_ckpt,
        "hydra.run.dir": f"{paths.root}/rl/hydra",
    }
    if s.rl_filter_groups:
        overrides.update(FILTER_GROUPS)
    args = [f"{k}={v}" for k, v in overrides.items()] + list(s.extra_rl_overrides)
    return [sys.executable, "-m", "verl.trainer.main_ppo", "--config-name", RL_PRESET, *args]
