"""Validation in chunks (data.val_batch_size prompts per generate call) on the in-process backend: the same metrics and
the same printed generations as one call over the whole val set."""
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from verl.single_controller.base.decorator import Dispatch, register  # noqa: E402
from verl.trainer.config_check import ConfigError  # noqa: E402
from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402
from verl.trainer.ppo.ray_trainer import Role  # noqa: E402
from verl.workers.fsdp_workers import ActorRolloutRefWorker  # noqa: E402

VAL_ROWS = 7


class RecordingWorker(ActorRolloutRefWorker):
    """The real worker, recording the rows of every generate_sequences call (the in-process backend runs it here)."""

    calls: list[int] = []

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def generate_sequences(self, prompts):
        RecordingWorker.calls.append(len(prompts))
        return super().generate_sequences(prompts)


def validate_only(model_dir, work_dir, capsys, **extra):
    """Metrics of one validation pass (val_only) over VAL_ROWS prompts, the rows of each generate call, and the
    printed val generations."""
    RecordingWorker.calls = []
    config = load_config(toy_overrides(model_dir, work_dir, val_rows=VAL_ROWS, **{
        "trainer.val_before_train": True, "trainer.val_only": True, "trainer.log_val_generations": VAL_ROWS,
        "actor_rollout_ref.rollout.val_kwargs.do_sample": False, **extra}))
    capsys.readouterr()
    metrics = run_ppo(config, role_worker_mapping={Role.ActorRollout: RecordingWorker})
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[val] score=")]
    return metrics, list(RecordingWorker.calls), printed


def test_val_batch_size_chunks_generation_with_the_same_metrics(tiny_model_dir, tmp_path, one_thread, clean_process,
                                                                capsys):
    whole, whole_calls, whole_printed = validate_only(tiny_model_dir, str(tmp_path / "whole"), capsys)
    k = 3
    chunked, chunked_calls, chunked_printed = validate_only(tiny_model_dir, str(tmp_path / "chunked"), capsys,
                                                            **{"data.val_batch_size": k})
    assert whole_calls == [VAL_ROWS]  # null: the whole val set in one call, as verl
    assert len(chunked_calls) == math.ceil(VAL_ROWS / k) and max(chunked_calls) <= k and sum(chunked_calls) == VAL_ROWS
    assert "val-core/toy_say/reward/mean" in whole
    assert chunked == whole
    assert len(chunked_printed) == VAL_ROWS and chunked_printed == whole_printed


def test_val_batch_size_counts_prompts_of_val_kwargs_n_samples(tiny_model_dir, tmp_path, one_thread, clean_process,
                                                               capsys):
    _, calls, _ = validate_only(tiny_model_dir, str(tmp_path), capsys, **{
        "data.val_batch_size": 2, "actor_rollout_ref.rollout.val_kwargs.n": 3,
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True, "actor_rollout_ref.rollout.val_kwargs.temperature": 1.0})
    assert calls == [6, 6, 6, 3]  # 7 prompts x 3 samples, 2 prompts (6 rows) a call


@pytest.mark.parametrize("value", [0, -2, "'many'"])
def test_bad_val_batch_size_is_named(tiny_model_dir, tmp_path, value):
    from verl.trainer.config_check import validate_config

    with pytest.raises(ConfigError, match="data.val_batch_size"):
        validate_config(load_config(toy_overrides(tiny_model_dir, str(tmp_path), **{"data.val_batch_size": value})))
