"""``python -m verl.trainer.main_ppo key=value ...``: PPO / GRPO training with configs/ppo_trainer.yaml.

The config is checked before any worker starts (config_check). Heavy imports (torch, transformers, ray)
happen only after that, so a typo is reported in about a second.
"""
from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig

from verl.trainer.cli import main_with_checked_overrides, run_or_exit_on_config_error
from verl.trainer.config_check import (CONFIG_DIR, PPO_SCHEMA_PATH, compose_config, load_schema, rewrite_overrides,
                                       validate_config)
from verl.utils.seeding import seed_everything


def load_config(overrides: list[str] | None = None, config_name: str = "ppo_trainer",
                config_dir: str = CONFIG_DIR) -> DictConfig:
    """Compose a config like the command line would (same override rules), without running anything.

    Raises ConfigError for unknown override keys; call validate_config on the result for the rest.
    """
    base = compose_config(config_name, config_dir=config_dir)
    return compose_config(config_name, rewrite_overrides(list(overrides or []), base, load_schema()), config_dir)


def load_tokenizer(config: DictConfig):
    """The actor's tokenizer (or ``data.tokenizer``), with pad falling back to eos as in verl; the actor model's
    ``external_lib`` is imported first (it may register a tokenizer class, and a bad one fails here, in the driver)."""
    from verl.workers.sharding import load_tokenizer as load_hf_tokenizer

    model = config.actor_rollout_ref.model
    path = config.data.tokenizer or model.path
    return load_hf_tokenizer(os.path.expanduser(str(path)), bool(model.trust_remote_code), model.external_lib,
                             "actor_rollout_ref.model.external_lib")


def create_trainer(config: DictConfig, role_worker_mapping: dict | None = None):
    """Validate ``config``, seed the driver with trainer.seed, and build tokenizer, reward functions and the
    RayPPOTrainer (workers not started yet: ``init_workers()``). Raises ConfigError if the config is bad, if a
    data_source of the train / val files has no scorer, or if a scorer's ``preflight`` fails (reward_preflight)."""
    validate_config(config)
    seed_everything(int(config.trainer.seed))
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.trainer.ppo.reward_preflight import check_reward_before_workers

    check_reward_before_workers(config)
    tokenizer = load_tokenizer(config)
    reward_fn = load_reward_manager(config, tokenizer, num_examine=int(config.reward_model.num_examine))
    val_reward_fn = load_reward_manager(config, tokenizer, num_examine=int(config.reward_model.val_num_examine))
    return RayPPOTrainer(config, tokenizer, reward_fn, val_reward_fn, role_worker_mapping=role_worker_mapping)


def run_ppo(config: DictConfig, role_worker_mapping: dict | None = None) -> dict:
    """Validate ``config``, build the trainer, start its workers and train (the workers stop at the end).

    Returns the last step's metrics. Raises ConfigError before starting any worker if the config is bad.
    """
    trainer = create_trainer(config, role_worker_mapping)
    trainer.init_workers()
    return trainer.fit()


@hydra.main(config_path=CONFIG_DIR, config_name="ppo_trainer", version_base=None)
def _hydra_main(config: DictConfig) -> None:
    run_or_exit_on_config_error(run_ppo, config)


def main() -> None:
    """Check the overrides (clear errors for unknown keys, old `+key=` forms fixed up), then run hydra."""
    main_with_checked_overrides("ppo_trainer", PPO_SCHEMA_PATH, _hydra_main)


if __name__ == "__main__":
    main()
