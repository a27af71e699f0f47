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


# -- every key real or rejected --------------------------------------------------------------------------------------

def test_verl_keys_without_an_implementation_reject_other_values():
    msg = _errors(["actor_rollout_ref.hybrid_engine=False", "actor_rollout_ref.rollout.mode=async",
                   "data.dataloader_num_workers=4",
                   "actor_rollout_ref.actor.fsdp_config.wrap_policy.min_num_params=100000000",
                   "critic.model.fsdp_config.wrap_policy.min_num_params=1"])
    assert "5 problems" in msg
    for key in ("actor_rollout_ref.hybrid_engine=False", "actor_rollout_ref.rollout.mode='async'",
                "data.dataloader_num_workers=4", "actor_rollout_ref.actor.fsdp_config.wrap_policy.min_num_params=100000000",
                "critic.model.fsdp_config.wrap_policy.min_num_params=1"):
        assert key in msg, key


def test_policy_loss_mode_and_loss_scale_factor_are_checked():
    cfg = validate_config(load_config(GOOD + ["actor_rollout_ref.actor.policy_loss.loss_mode=gspo",
                                              "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
                                              "actor_rollout_ref.actor.loss_scale_factor=512"]))
    assert cfg.critic.loss_scale_factor == 512  # the critic follows the actor, as in verl
    msg = _errors(["actor_rollout_ref.actor.policy_loss.loss_mode=gpso", "actor_rollout_ref.actor.loss_scale_factor=0",
                   "actor_rollout_ref.actor.loss_agg_mode=token-max"])
    assert "actor_rollout_ref.actor.policy_loss.loss_mode='gpso' is not one of gspo, vanilla" in msg
    assert "actor_rollout_ref.actor.loss_scale_factor=0 must be a positive number" in msg
    assert "critic.loss_scale_factor=0 must be a positive number" in msg
    assert "actor_rollout_ref.actor.loss_agg_mode='token-max' is not one of token-mean, token-sum," in msg


def test_fsdp_size_must_divide_the_world_size():
    four_ranks = ["trainer.n_gpus_per_node=4"]
    cfg = validate_config(load_config(GOOD + four_ranks + ["actor_rollout_ref.actor.fsdp_config.fsdp_size=2",
                                                           "critic.model.fsdp_config.fsdp_size=4"]))
    assert cfg.actor_rollout_ref.actor.fsdp_config.fsdp_size == 2
    msg = _errors(four_ranks + ["actor_rollout_ref.actor.fsdp_config.fsdp_size=3", "critic.model.fsdp_config.fsdp_size=0"])
    assert "actor_rollout_ref.actor.fsdp_config.fsdp_size=3 does not divide the 4 ranks" in msg
    assert "critic.model.fsdp_config.fsdp_size=0 must be -1" in msg


def test_external_lib_that_python_cannot_find_is_named(tmp_path, monkeypatch):
    msg = _errors(["actor_rollout_ref.model.external_lib=no_such_pkg_for_verl.models"])
    assert "actor_rollout_ref.model.external_lib='no_such_pkg_for_verl.models'" in msg
    (tmp_path / "my_arch_for_verl.py").write_text("IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    validate_config(load_config(GOOD + ["actor_rollout_ref.model.external_lib=my_arch_for_verl"]))


def test_driver_imports_external_lib_before_loading_the_tokenizer(tmp_path, monkeypatch, tiny_model_dir):
    import sys

    from verl.trainer.main_ppo import load_tokenizer

    (tmp_path / "driver_lib_for_verl.py").write_text("import builtins\nbuiltins.DRIVER_LIB_FOR_VERL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(GOOD + [f"actor_rollout_ref.model.path={tiny_model_dir}",
                              "actor_rollout_ref.model.external_lib=driver_lib_for_verl"])
    assert load_tokenizer(cfg).pad_token_id is not None
    assert "driver_lib_for_verl" in sys.modules
    cfg.actor_rollout_ref.model.external_lib = "no_such_module_for_verl"
    with pytest.raises(ImportError, match="actor_rollout_ref.model.external_lib='no_such_module_for_verl'"):
        load_tokenizer(cfg)


# Keys of ppo_trainer.yaml that verl/ accepts without reading them anywhere, each with the reason. Keep it empty
# where possible: a key that is neither read nor listed here is a silent no-op, which the test below forbids.
UNREAD_LEGACY_KEYS: dict[str, str] = {}


def _names_read_in(package_dir: str) -> set[str]:
    """Attribute names (``x.name``) and whole string literals (``get("name")``, ``["name"]``) in the code of
    ``package_dir``; comments, docstring words and f-strings do not count."""
    import ast
    import os
    import re
    import tokenize

    names = set()
    for root, _, files in os.walk(package_dir):
        for file in (f for f in files if f.endswith(".py")):
            with open(os.path.join(root, file)) as f:
                tokens = list(tokenize.generate_tokens(f.readline))
            for prev, tok in zip(tokens, tokens[1:]):
                if tok.type == tokenize.NAME and prev.type == tokenize.OP and prev.string == ".":
                    names.add(tok.string)
                elif tok.type == tokenize.STRING and not re.match(r"[a-zA-Z]*[fF]", tok.string):
                    value = ast.literal_eval(tok.string)
                    if isinstance(value, str):
                        names.add(value)
    return names


def test_every_key_of_ppo_trainer_yaml_is_read_or_a_listed_legacy_key():
    """"Every key is checked" stays true: each leaf key's name is read somewhere in verl/ (as an attribute or a
    ``get``/subscript string); a key inside an open map (ray_init) counts through its map's name."""
    import os

    from verl.trainer.config_check import OPEN_SECTIONS, _leaf_paths, load_schema

    read = _names_read_in(os.path.join(os.path.dirname(__file__), "..", "..", "..", "verl"))
    unread = []
    for path in _leaf_paths(load_schema()):
        section = path.split(".", 1)[0]
        name = section if section in OPEN_SECTIONS else path.rsplit(".", 1)[-1]
        if name not in read and path not in UNREAD_LEGACY_KEYS:
            unread.append(path)
    assert not unread, f"keys of configs/ppo_trainer.yaml that nothing reads (silently ignored): {unread}"


def test_reference_computes_in_the_actors_mixed_precision_unless_told_otherwise():
    bf16 = {"param_dtype": "bf16", "reduce_dtype": "fp32"}
    cfg = load_config(GOOD + ["actor_rollout_ref.actor.fsdp_config.mixed_precision={param_dtype: bf16, reduce_dtype: fp32}"])
    assert cfg.actor_rollout_ref.ref.fsdp_config.mixed_precision == bf16
    cfg = load_config(GOOD + ["actor_rollout_ref.ref.fsdp_config.mixed_precision={param_dtype: fp32}"])
    assert cfg.actor_rollout_ref.ref.fsdp_config.mixed_precision == {"param_dtype": "fp32"}
    assert cfg.actor_rollout_ref.actor.fsdp_config.mixed_precision is None


def test_overlong_buffer_len_must_lie_inside_the_response_length_when_enabled():
    on = ["reward_model.overlong_buffer.enable=True", "reward_model.overlong_buffer.penalty_factor=1.0",
          "data.max_response_length=512"]
    assert "reward_model.overlong_buffer.len=0 must be > 0" in _errors(on)  # the default len with enable
    assert ("reward_model.overlong_buffer.len=512 must be > 0 and < data.max_response_length=512"
            in _errors(on + ["reward_model.overlong_buffer.len=512"]))
    assert "overlong_buffer.penalty_factor=-1.0 must be >= 0" in _errors(
        on + ["reward_model.overlong_buffer.len=128", "reward_model.overlong_buffer.penalty_factor=-1"])
    validate_config(load_config(GOOD + on + ["reward_model.overlong_buffer.len=128"]))
    validate_config(load_config(GOOD + ["reward_model.overlong_buffer.len=0"]))  # disabled: not checked


def test_overlong_buffer_without_a_penalty_factor_warns(caplog):
    with caplog.at_level("WARNING", logger="verl.trainer.config_check"):
        validate_config(load_config(GOOD + ["reward_model.overlong_buffer.enable=True",
                                            "reward_model.overlong_buffer.len=128"]))
    assert "overlong_buffer.enable=True with penalty_factor=0" in caplog.text


FILTER = ["algorithm.filter_groups.enable=True", "algorithm.filter_groups.metric=acc", "data.gen_batch_size=8"]


def test_dynamic_sampling_with_verls_keys_validates():
    cfg = validate_config(load_config(GOOD + FILTER + ["algorithm.filter_groups.max_num_gen_batches=10"]))
    assert cfg.algorithm.filter_groups.on_exhausted == "error"  # verl's behaviour at the limit
    assert load_config(GOOD).data.gen_batch_size == 4  # default: data.train_batch_size


def test_dynamic_sampling_needs_several_samples_and_a_metric():
    msg = _errors(FILTER + ["actor_rollout_ref.rollout.n=1", "algorithm.adv_estimator=reinforce_plus_plus",
                            "actor_rollout_ref.actor.ppo_mini_batch_size=2", "algorithm.filter_groups.metric=null"])
    assert "algorithm.filter_groups.enable=True compares the samples" in msg and "rollout.n > 1 (got n=1)" in msg
    assert "algorithm.filter_groups.metric=None" in msg


def test_gen_batch_size_is_only_for_dynamic_sampling():
    msg = _errors(["data.gen_batch_size=8"])
    assert "data.gen_batch_size=8 differs from data.train_batch_size=4" in msg
    assert "data.gen_batch_size=0 must be a positive" in _errors(FILTER + ["data.gen_batch_size=0"])


def test_a_round_limit_that_can_never_fill_the_batch():
    msg = _errors(FILTER + ["data.gen_batch_size=1", "algorithm.filter_groups.max_num_gen_batches=3"])
    assert "max_num_gen_batches=3 rounds x data.gen_batch_size=1 prompts can never fill data.train_batch_size=4" in msg


def test_filter_groups_values_are_named():
    msg = _errors(FILTER + ["algorithm.filter_groups.on_exhausted=skip", "algorithm.filter_groups.max_num_gen_batches=x"])
    assert "algorithm.filter_groups.on_exhausted='skip' is not one of error, train" in msg
    assert "algorithm.filter_groups.max_num_gen_batches='x' must be an integer" in msg
    msg = _errors(FILTER + ["algorithm.filter_groups.metric=seq_final_reward", "algorithm.use_kl_in_reward=True"])
    assert "metric=seq_final_reward with algorithm.use_kl_in_reward=True" in msg
