"""configs/ppo_trainer.yaml + verl/trainer/config_check.py: unknown keys, legacy keys, bad combinations."""
import subprocess
import sys

import pytest

from verl.trainer.config_check import ConfigError, validate_config
from verl.trainer.main_ppo import load_config

# A small valid run shape: 4 prompts x n=2 on 2 ranks.
GOOD = [
    "data.train_batch_size=4",
    "actor_rollout_ref.rollout.n=2",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "critic.ppo_micro_batch_size_per_gpu=1",
    "trainer.n_gpus_per_node=2",
    "trainer.device=cpu",
]


def _errors(overrides):
    with pytest.raises(ConfigError) as info:
        validate_config(load_config(GOOD + overrides))
    return str(info.value)


def test_good_config_validates_and_fills_derived_keys():
    cfg = validate_config(load_config(GOOD))
    assert cfg.actor_rollout_ref.device == "cpu" and cfg.critic.device == "cpu"
    assert cfg.actor_rollout_ref.actor.clip_ratio_low == cfg.actor_rollout_ref.actor.clip_ratio == 0.2
    assert cfg.critic.rollout_n == 2  # interpolated from rollout.n


def test_misspelled_key_on_the_command_line_names_it_and_suggests():
    with pytest.raises(ConfigError) as info:
        load_config(GOOD + ["trainer.save_freqq=3"])
    assert "trainer.save_freqq" in str(info.value) and "trainer.save_freq" in str(info.value)


def test_misspelled_key_added_with_plus_is_still_an_error():
    assert "unknown config key 'trainer.val_befor_train'" in _errors(["+trainer.val_befor_train=False"])


def test_old_plus_form_for_an_existing_key_and_open_maps_are_accepted():
    cfg = load_config(GOOD + ["+trainer.val_before_train=False",
                              "actor_rollout_ref.model.override_config.attention_dropout=0.0",
                              "+custom_reward_function.reward_kwargs.k=100"])
    assert cfg.trainer.val_before_train is False
    assert cfg.actor_rollout_ref.model.override_config.attention_dropout == 0.0
    validate_config(cfg)


def test_mini_batch_that_does_not_divide_the_batch():
    msg = _errors(["actor_rollout_ref.actor.ppo_mini_batch_size=3"])
    assert "actor_rollout_ref.actor.ppo_mini_batch_size=3" in msg and "data.train_batch_size=4" in msg


def test_micro_batch_larger_than_the_mini_batch_per_rank():
    msg = _errors(["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4"])
    # mini 2 prompts x n 2 / 2 ranks = 2 samples per rank
    assert "ppo_micro_batch_size_per_gpu=4 is larger than the mini-batch per rank" in msg and "= 2 samples" in msg


def test_mini_batch_samples_that_do_not_split_over_ranks():
    msg = _errors(["actor_rollout_ref.rollout.n=1", "algorithm.adv_estimator=reinforce_plus_plus",
                   "actor_rollout_ref.actor.ppo_mini_batch_size=1", "trainer.n_gpus_per_node=2"])
    assert "does not split over 2 ranks" in msg


def test_grpo_with_one_sample_per_prompt():
    msg = _errors(["algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=1"])
    assert "algorithm.adv_estimator=grpo" in msg and "n=1" in msg


def test_all_problems_are_reported_together():
    msg = _errors(["algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=1", "data.truncation=sideways",
                   "trainer.backend=local"])
    assert "3 problems" in msg or "4 problems" in msg
    assert "data.truncation='sideways'" in msg and "trainer.backend=local" in msg


def test_legacy_global_micro_batch_keys():
    # legacy global form is accepted ...
    validate_config(load_config([g for g in GOOD if "actor.ppo_micro" not in g]
                                + ["actor_rollout_ref.actor.ppo_micro_batch_size=2"]))
    # ... but not together with the per-GPU form
    msg = _errors(["actor_rollout_ref.actor.ppo_micro_batch_size=2"])
    assert "are both set" in msg


def test_legacy_resume_and_checkpoint_keys(tmp_path):
    step = tmp_path / "global_step_3"
    step.mkdir()
    cfg = validate_config(load_config(GOOD + ["trainer.resume_mode=resume_path", f"trainer.resume_from_path={step}",
                                              "trainer.remove_previous_ckpt_in_save=True",
                                              "actor_rollout_ref.actor.strategy=fsdp",
                                              "actor_rollout_ref.actor.fsdp_config.grad_offload=True"]))
    assert cfg.trainer.resume_mode == str(step)
    assert cfg.trainer.max_actor_ckpt_to_keep == 1 and cfg.actor_rollout_ref.actor.strategy == "fsdp2"


def test_cli_reports_a_misspelled_key_before_starting_anything(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", "data.train_batch_sizee=8"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "data.train_batch_sizee" in proc.stderr and "data.train_batch_size" in proc.stderr


def test_cli_composes_old_style_overrides(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", "+trainer.val_before_train=False",
                           "actor_rollout_ref.model.override_config.attention_dropout=0.0", "--cfg", "job"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)  # hydra writes outputs/ here
    assert proc.returncode == 0, proc.stderr
    assert "val_before_train: false" in proc.stdout and "attention_dropout: 0.0" in proc.stdout


def _old_pass(overrides):
    from verl.trainer.config_check import need_old_log_prob_pass

    return need_old_log_prob_pass(validate_config(load_config(GOOD + overrides)))


ONE_UPDATE = ["actor_rollout_ref.actor.ppo_mini_batch_size=4"]  # = data.train_batch_size, ppo_epochs 1


def test_old_log_prob_pass_is_skipped_only_when_each_batch_gets_one_update():
    assert not _old_pass(ONE_UPDATE)  # auto
    assert _old_pass(ONE_UPDATE + ["actor_rollout_ref.actor.recompute_old_log_prob=true"])
    assert _old_pass([])  # two mini-batches per batch
    assert _old_pass(ONE_UPDATE + ["actor_rollout_ref.actor.ppo_epochs=2"])
    # the KL penalty in the reward reads the old log-probs before the update
    assert _old_pass(ONE_UPDATE + ["algorithm.use_kl_in_reward=True",
                                   "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2"])


def test_forcing_the_shortcut_where_it_is_not_exact_is_an_error():
    msg = _errors(["actor_rollout_ref.actor.recompute_old_log_prob=false", "actor_rollout_ref.actor.ppo_epochs=2"])
    assert "recompute_old_log_prob=false" in msg and "ppo_epochs=2" in msg and "ppo_mini_batch_size=2" in msg
    msg = _errors(["actor_rollout_ref.actor.recompute_old_log_prob=sometimes"])
    assert "recompute_old_log_prob='sometimes' is not one of auto, true, false" in msg


def test_log_prob_micro_batch_is_required_only_when_the_old_pass_runs():
    no_micro = [g for g in GOOD if "log_prob_micro" not in g]
    validate_config(load_config(no_micro + ONE_UPDATE))
    with pytest.raises(ConfigError, match="log_prob_micro_batch_size_per_gpu"):
        validate_config(load_config(no_micro))
