"""Metric series out of merged metrics rows (see metrics_file.read_metrics), shared by the run report and the demo."""
from __future__ import annotations

import re
from typing import Sequence


def curve(rows: list[dict], key: str) -> list[list[float]]:
    """``[[step, value], ...]`` of ``key`` over ``rows`` (steps where it is missing or null are left out)."""
    return [[row["step"], row[key]] for row in rows if row.get(key) is not None]


def smooth(values: Sequence[float], window: int = 20) -> list[float]:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def keys_matching(rows: list[dict], pattern: str) -> list[str]:
    """Every metric key of ``rows`` that ``pattern`` (a regex) matches in full, sorted."""
    regex = re.compile(pattern)
    return sorted({key for row in rows for key in row if key != "step" and regex.fullmatch(key)})
