"""Send metrics to every configured tracker: console, metrics.jsonl (always), wandb, tensorboard.

``Tracking(project_name, experiment_name, default_backend, config, local_dir).log(data, step)``, as in verl.
wandb runs offline when no WANDB_API_KEY is set (and WANDB_MODE is not given), so a run never blocks on a
login prompt.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any, Iterable

SUPPORTED_BACKENDS = ("console", "wandb", "tensorboard", "jsonl")

# What the console line shows, in order: (metric key, short label, format).
CONSOLE_FIELDS = (
    ("critic/score/mean", "score", "{:.3f}"),
    ("critic/rewards/mean", "reward", "{:.3f}"),
    ("actor/pg_loss", "pg_loss", "{:.4f}"),
    ("actor/entropy", "entropy", "{:.3f}"),
    ("actor/ppo_kl", "ppo_kl", "{:.2e}"),
    ("actor/kl_loss", "kl_loss", "{:.2e}"),
    ("actor/grad_norm", "grad_norm", "{:.3f}"),
    ("critic/vf_loss", "vf_loss", "{:.4f}"),
    ("response_length/mean", "resp_len", "{:.1f}"),
    ("perf/throughput", "tok/s", "{:.0f}"),
)
TIMING_FIELDS = ("gen", "reward", "old_log_prob", "ref", "values", "adv", "update_critic", "update_actor", "testing",
                 "save_checkpoint")


def _to_number(value) -> float | None:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Number):
        return float(value)
    return None


def format_console_line(data: dict, step: int, total_steps: int | None = None) -> str:
    """One readable line: step, key training numbers, step time and where it went."""
    head = f"step {step}" + (f"/{total_steps}" if total_steps else "")
    parts = [head]
    for key, label, fmt in CONSOLE_FIELDS:
        if key in data and _to_number(data[key]) is not None:
            parts.append(f"{label} {fmt.format(_to_number(data[key]))}")
    val = {k: v for k, v in data.items() if k.startswith("val-core/") and _to_number(v) is not None}
    for key, value in sorted(val.items()):
        parts.append(f"{key.removeprefix('val-core/')} {_to_number(value):.3f}")
    if "timing_s/step" in data:
        spent = [(name, _to_number(data[f"timing_s/{name}"])) for name in TIMING_FIELDS if f"timing_s/{name}" in data]
        detail = ", ".join(f"{name} {sec:.2f}" for name, sec in spent if sec is not None)
        parts.append(f"{_to_number(data['timing_s/step']):.2f}s" + (f" ({detail})" if detail else ""))
    return " | ".join(parts)


class ConsoleLogger:
    def __init__(self, total_steps: int | None = None):
        self.total_steps = total_steps

    def log(self, data: dict, step: int) -> None:
        print(format_console_line(data, step, self.total_steps), flush=True)

    def finish(self) -> None:
        pass


class JsonlLogger:
    """Appends one JSON object per log call: {"step": N, <metric>: value, ...}; NaN/inf become null."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def log(self, data: dict, step: int) -> None:
        row: dict[str, Any] = {"step": step}
        for key, value in data.items():
            number = _to_number(value)
            if number is not None:
                row[key] = number if math.isfinite(number) else None
            elif isinstance(value, str):
                row[key] = value
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def finish(self) -> None:
        self._file.close()


class WandbLogger:
    def __init__(self, project_name: str, experiment_name: str, config: dict | None, local_dir: str):
        import wandb

        if not os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
            os.environ["WANDB_MODE"] = "offline"
        os.makedirs(local_dir, exist_ok=True)
        self._wandb = wandb
        self.run = wandb.init(project=project_name, name=experiment_name, config=config, dir=local_dir,
                              settings=wandb.Settings(silent=True))

    def log(self, data: dict, step: int) -> None:
        self.run.log({k: v for k, v in data.items() if _to_number(v) is not None or isinstance(v, str)}, step=step)

    def finish(self) -> None:
        self.run.finish()


class TensorboardLogger:
    def __init__(self, log_dir: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir)

    def log(self, data: dict, step: int) -> None:
        for key, value in data.items():
            number = _to_number(value)
            if number is not None:
                self.writer.add_scalar(key, number, global_step=step)
        self.writer.flush()

    def finish(self) -> None:
        self.writer.close()


class Tracking:
    """Fan metrics out to the configured backends; ``metrics.jsonl`` in ``local_dir`` is always written.

    Args:
        project_name, experiment_name: run names for wandb.
        default_backend: a name or list of names from SUPPORTED_BACKENDS.
        config: the run config (a plain dict), stored with the wandb run.
        local_dir: where metrics.jsonl, wandb/ and tensorboard/ go (trainer.default_local_dir).
        total_steps: shown on the console line as step N/total.
    """

    def __init__(self, project_name: str, experiment_name: str, default_backend: str | Iterable[str] = "console",
                 config: dict | None = None, local_dir: str = ".", total_steps: int | None = None):
        backends = [default_backend] if isinstance(default_backend, str) else list(default_backend or [])
        for name in backends:
            if name not in SUPPORTED_BACKENDS:
                raise ValueError(f"trainer.logger: unknown backend {name!r}; supported: {', '.join(SUPPORTED_BACKENDS)}")
        self.local_dir = local_dir
        self.loggers: dict[str, Any] = {"jsonl": JsonlLogger(os.path.join(local_dir, "metrics.jsonl"))}
        if "console" in backends:
            self.loggers["console"] = ConsoleLogger(total_steps)
        if "wandb" in backends:
            self.loggers["wandb"] = WandbLogger(project_name, experiment_name, config, local_dir)
        if "tensorboard" in backends:
            tb_dir = os.environ.get("TENSORBOARD_DIR") or os.path.join(local_dir, "tensorboard")
            self.loggers["tensorboard"] = TensorboardLogger(tb_dir)

    def log(self, data: dict, step: int, backend: str | Iterable[str] | None = None) -> None:
        """Log ``data`` (metric name -> number) at ``step`` to all backends (or only those named)."""
        names = None if backend is None else ({backend} if isinstance(backend, str) else set(backend))
        for name, tracker in self.loggers.items():
            if names is None or name in names:
                tracker.log(data, step)

    def finish(self) -> None:
        for tracker in self.loggers.values():
            tracker.finish()
        self.loggers = {}

    def __del__(self):
        try:
            self.finish()
        except Exception:
            pass
