"""config_check on verl's LoRA keys (actor_rollout_ref.model.lora_rank / lora_alpha / target_modules /
exclude_modules): good settings pass, nonsense is named before any worker starts."""
import re

import pytest

from verl.trainer.config_check import ConfigError, validate_config
from verl.trainer.main_ppo import load_config
from test_ppo_config_check import GOOD


def _validate(model_dir, overrides):
    return validate_config(load_config(GOOD + [f"actor_rollout_ref.model.path={model_dir}"] + overrides))


def _errors(model_dir, overrides) -> str:
    with pytest.raises(ConfigError) as info:
        _validate(model_dir, overrides)
    return str(info.value)


def test_lora_settings_verl_scripts_use_are_accepted(tiny_model_dir):
    cfg = _validate(tiny_model_dir, ["actor_rollout_ref.model.lora_rank=64", "actor_rollout_ref.model.lora_alpha=32"])
    assert cfg.actor_rollout_ref.model.target_modules == "all-linear"
    _validate(tiny_model_dir, ["actor_rollout_ref.model.lora_rank=8",
                               "actor_rollout_ref.model.target_modules=[q_proj,v_proj]",
                               "actor_rollout_ref.model.exclude_modules=[o_proj]"])
    _validate(tiny_model_dir, ["actor_rollout_ref.model.lora_rank=8",
                               r"actor_rollout_ref.model.target_modules='.*layers\.0\..*_proj'"])


@pytest.mark.parametrize("overrides, message", [
    (["actor_rollout_ref.model.lora_rank=-1"], "lora_rank=-1 must be an integer >= 0"),
    (["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.lora_alpha=0"], "lora_alpha=0 must be a positive number"),
    (["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.target_modules=[]"],
     "target_modules=.* must be 'all-linear'"),
    (["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.target_modules=[q_proj,qkv_proj,mlp_in]"],
     r"target_modules names \['qkv_proj', 'mlp_in'\], which match no linear layer of Qwen2ForCausalLM; its linear "
     r"layers: \['down_proj', 'gate_proj', 'k_proj', 'lm_head', 'o_proj', 'q_proj', 'up_proj', 'v_proj'\]"),
    (["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.exclude_modules=[attn_out]"],
     r"exclude_modules names \['attn_out'\]"),
    (["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.target_modules='.*attention.*'"],
     r"target_modules='.\*attention.\*' \(a regular expression\) matches no linear layer"),
])
def test_nonsense_lora_settings_are_named(tiny_model_dir, overrides, message):
    assert re.search(message, _errors(tiny_model_dir, overrides))


def test_lora_off_ignores_the_other_lora_keys(tiny_model_dir):
    _validate(tiny_model_dir, ["actor_rollout_ref.model.lora_rank=0",
                               "actor_rollout_ref.model.target_modules=[no_such_layer]"])
