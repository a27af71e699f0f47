"""``python -m verl.trainer.main_sft key=value ...``: supervised fine-tuning with configs/sft_trainer.yaml.

Also runs under ``torchrun --nproc_per_node=N -m verl.trainer.main_sft ...`` (FSDP2 over N ranks).
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from verl.trainer.cli import main_with_checked_overrides, run_or_exit_on_config_error
from verl.trainer.config_check import CONFIG_DIR, SFT_SCHEMA_PATH, compose_config, load_schema, rewrite_overrides
from verl.utils.seeding import seed_everything


def load_sft_config(overrides: list[str] | None = None, config_dir: str = CONFIG_DIR) -> DictConfig:
    """Compose sft_trainer.yaml with command-line style overrides; ConfigError naming an unknown key."""
    base = compose_config("sft_trainer", config_dir=config_dir)
    overrides = rewrite_overrides(list(overrides or []), base, load_schema(SFT_SCHEMA_PATH))
    return compose_config("sft_trainer", overrides, config_dir)


def run_sft(config: DictConfig) -> dict:
    """Check the config, seed, train; returns the last step's metrics."""
    from verl.trainer.fsdp_sft_trainer import FSDPSFTTrainer, prepare_sft_config

    prepare_sft_config(config)
    seed_everything(int(config.trainer.seed))
    return FSDPSFTTrainer(config).fit()


@hydra.main(config_path=CONFIG_DIR, config_name="sft_trainer", version_base=None)
def _hydra_main(config: DictConfig) -> None:
    run_or_exit_on_config_error(run_sft, config)


def main() -> None:
    """Check the overrides (clear errors for unknown keys), then run hydra."""
    main_with_checked_overrides("sft_trainer", SFT_SCHEMA_PATH, _hydra_main)


if __name__ == "__main__":
    main()
