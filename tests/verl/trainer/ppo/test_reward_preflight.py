"""The reward is checked before any worker starts: every data_source of the train and val files has a scorer, and
a scorer's ``preflight`` hook runs (with reward_kwargs) in the driver."""
import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides, write_toy_parquet  # noqa: E402

from verl.trainer.config_check import ConfigError  # noqa: E402
from verl.trainer.main_ppo import create_trainer, load_config, run_ppo  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402

SCORER = '''
import builtins

PREFLIGHT_CALLS = builtins.__dict__.setdefault("verl_test_preflight_calls", [])


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return 0.0


def preflight(**kwargs):
    PREFLIGHT_CALLS.append(kwargs)
    if kwargs.get("index") == "missing":
        raise FileNotFoundError("index folder 'missing' not found")
'''


@pytest.fixture()
def no_workers(monkeypatch):
    """Fails the test if any worker group is started; returns the list of attempts."""
    started = []
    monkeypatch.setattr(RayPPOTrainer, "init_workers", lambda self: started.append(self) or pytest.fail("workers"))
    return started


@pytest.fixture()
def preflight_calls():
    import builtins

    calls = builtins.__dict__.setdefault("verl_test_preflight_calls", [])
    calls.clear()
    yield calls
    calls.clear()


def _scorer_file(tmp_path) -> str:
    path = tmp_path / "scorer_with_preflight.py"
    path.write_text(textwrap.dedent(SCORER))
    return str(path)


def test_unregistered_data_source_fails_before_any_worker_starts(tiny_model_dir, tmp_path, no_workers):
    """The default config (no custom_reward_function, verl's gsm8k data) named a scorer nobody registered."""
    val = write_toy_parquet(str(tmp_path / "gsm8k_test.parquet"), 3, data_source="openai/gsm8k")
    cfg = load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{"custom_reward_function.path": "null",
                                                                     "data.val_files": val}))
    with pytest.raises(ConfigError) as info:
        run_ppo(cfg)
    msg = str(info.value)
    assert "2 data sources" in msg
    assert "data_source 'toy_say' (16 rows of data.train_files" in msg and str(tmp_path / "train.parquet") in msg
    assert "data_source 'openai/gsm8k' (3 rows of data.val_files" in msg and val in msg
    assert "reward_model.data_source_scorers" in msg and "custom_reward_function.path" in msg
    assert no_workers == []


def test_data_source_scorers_pattern_resolves_and_its_module_preflight_runs(tiny_model_dir, tmp_path, preflight_calls):
    scorer = _scorer_file(tmp_path)
    cfg = load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{"custom_reward_function.path": "null"}))
    cfg.reward_model.data_source_scorers = {"toy_*": f"{scorer}:compute_score"}  # a pattern: yaml, not the CLI
    trainer = create_trainer(cfg)
    assert len(trainer.train_dataset) == 16
    assert preflight_calls == [{}]  # registry scorers get no reward_kwargs


def test_custom_reward_preflight_gets_reward_kwargs_and_its_error_stops_the_run(tiny_model_dir, tmp_path,
                                                                                 no_workers, preflight_calls):
    scorer = _scorer_file(tmp_path)
    good = toy_overrides(tiny_model_dir, str(tmp_path), **{
        "custom_reward_function.path": scorer, "custom_reward_function.name": "compute_score",
        "+custom_reward_function.reward_kwargs.index": "data/index", "+custom_reward_function.reward_kwargs.k": 10})
    create_trainer(load_config(good))
    assert preflight_calls == [{"index": "data/index", "k": 10}]
    bad = load_config(good + ["++custom_reward_function.reward_kwargs.index=missing"])
    with pytest.raises(ConfigError) as info:
        run_ppo(bad)
    assert "custom_reward_function.path=" in str(info.value) and "index folder 'missing' not found" in str(info.value)
    assert no_workers == []


def test_file_without_the_reward_fn_key_column_is_named(tiny_model_dir, tmp_path):
    cfg = load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{"custom_reward_function.path": "null",
                                                                     "data.reward_fn_key": "task"}))
    with pytest.raises(ConfigError, match=r"data.train_files: .*train.parquet' has no 'task' column"):
        create_trainer(cfg)
