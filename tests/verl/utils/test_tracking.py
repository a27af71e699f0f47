"""verl/utils/tracking.py: console line, metrics.jsonl, tensorboard and offline wandb."""
import json
import os

import pytest

from verl.utils.tracking import Tracking, format_console_line

METRICS = {"critic/score/mean": 0.25, "actor/pg_loss": -0.01, "response_length/mean": 7.5, "timing_s/step": 1.5,
           "timing_s/gen": 0.5, "timing_s/update_actor": 0.75, "val-core/toy/reward/mean": 0.5}


def test_console_line_is_short_and_readable():
    line = format_console_line(METRICS, step=3, total_steps=30)
    assert line.startswith("step 3/30 | score 0.250 | pg_loss -0.0100")
    assert "resp_len 7.5" in line and "toy/reward/mean 0.500" in line
    assert line.endswith("1.50s (gen 0.50, update_actor 0.75)")


def test_jsonl_is_always_written_and_keeps_every_metric(tmp_path, capsys):
    tracker = Tracking("p", "e", default_backend=["console"], local_dir=str(tmp_path))
    tracker.log(METRICS, step=1)
    tracker.log({"critic/score/mean": float("nan")}, step=2)
    tracker.finish()
    assert "step 1 | score 0.250" in capsys.readouterr().out
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert rows[0] == {"step": 1, **METRICS}
    assert rows[1] == {"step": 2, "critic/score/mean": None}


def test_unknown_backend_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'mlflow'"):
        Tracking("p", "e", default_backend=["mlflow"], local_dir=str(tmp_path))


def test_tensorboard_and_offline_wandb(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = Tracking("p", "e", default_backend=["tensorboard", "wandb"], config={"a": 1}, local_dir=str(tmp_path))
    assert os.environ["WANDB_MODE"] == "offline"
    tracker.log({"critic/score/mean": 0.5}, step=1)
    tracker.finish()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
    assert any(d.startswith("offline-run") for d in os.listdir(tmp_path / "wandb"))
