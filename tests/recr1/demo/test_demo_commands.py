"""The demo's GRPO command line is a valid trainer config, with and without dynamic sampling."""
import dataclasses

from recr1.demo.commands import rl_command
from recr1.demo.paths import DemoPaths
from recr1.demo.settings import FULL
from verl.trainer.config_check import validate_config
from verl.trainer.main_ppo import load_config


def trainer_config(settings, root):
    command = rl_command(settings, DemoPaths(str(root)), prompt_length=96)
    at = command.index("--config-name")
    overrides = [a for a in command[at + 2:] if not a.startswith("hydra.")]
    return validate_config(load_config(overrides, config_name=command[at + 1]))


def test_rl_filter_groups_turns_on_dynamic_sampling(tmp_path):
    plain = trainer_config(dataclasses.replace(FULL, rl_filter_groups=False), tmp_path)
    assert not plain.algorithm.filter_groups.enable
    dynamic = trainer_config(FULL, tmp_path).algorithm.filter_groups  # the default: it beat plain GRPO on 3 seeds
    assert dynamic.enable and dynamic.metric == "seq_reward"
    assert dynamic.max_num_gen_batches == 4 and dynamic.on_exhausted == "train"
