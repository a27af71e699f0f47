"""Find and read a run's ``metrics.jsonl`` (verl.utils.tracking's JsonlLogger: one JSON object per log call,
``{"step": N, <metric>: value, ...}``, in ``trainer.default_local_dir``)."""
from __future__ import annotations

import json
import math
import os

METRICS_FILE = "metrics.jsonl"
_SEARCH_DEPTH = 3


def find_metrics_file(run: str) -> str:
    """The metrics.jsonl of ``run``: the file itself, ``run/metrics.jsonl``, or the only one at most three folders
    below ``run`` (e.g. the demo's ``outputs/demo/rl`` -> ``rl/ckpt/metrics.jsonl``). FileNotFoundError naming
    ``run`` when there is none, ValueError listing them when there are several."""
    if os.path.isfile(run):
        return run
    if not os.path.isdir(run):
        raise FileNotFoundError(f"{run}: no such file or folder (give a run folder, trainer.default_local_dir, "
                                f"or its {METRICS_FILE})")
    direct = os.path.join(run, METRICS_FILE)
    if os.path.isfile(direct):
        return direct
    found = []
    base_depth = run.rstrip(os.sep).count(os.sep)
    for folder, subfolders, files in os.walk(run):
        if folder.count(os.sep) - base_depth >= _SEARCH_DEPTH:
            subfolders[:] = []
        subfolders.sort()
        if METRICS_FILE in files:
            found.append(os.path.join(folder, METRICS_FILE))
    if not found:
        raise FileNotFoundError(f"no {METRICS_FILE} in {run} or up to {_SEARCH_DEPTH} folders below it (the trainer "
                                f"writes it into trainer.default_local_dir)")
    if len(found) > 1:
        raise ValueError(f"several {METRICS_FILE} below {run}: {found}; name one of them")
    return found[0]


def read_metrics(path: str) -> list[dict]:
    """The rows of ``path`` merged into one dict per step, in step order: ``[{"step": N, key: float|None, ...}]``.

    A step logged twice (validation before training, or a resumed run that repeats the steps after its
    checkpoint) keeps every key, the later line winning. Blank lines are skipped; a line that is not a JSON object
    with an integer ``step`` raises ValueError naming ``path`` and the line number. Non-numeric values (strings)
    are dropped; null stays None (the tracker writes NaN/inf as null)."""
    by_step: dict[int, dict] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}): "
                                 f"{line.strip()[:120]!r}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            step = row.get("step")
            if isinstance(step, float) and step.is_integer():
                step = int(step)
            if not isinstance(step, int) or isinstance(step, bool):
                raise ValueError(f"{path}:{number}: 'step' must be an integer, got {step!r}")
            merged = by_step.setdefault(step, {"step": step})
            for key, value in row.items():
                if key == "step":
                    continue
                if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                    merged[key] = None if value is None or not math.isfinite(value) else float(value)
                elif isinstance(value, bool):
                    merged[key] = float(value)
    return [by_step[s] for s in sorted(by_step)]
