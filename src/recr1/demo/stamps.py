"""Idempotent stages: a stage is skipped when its stamp matches the settings it depends on and its output is valid.

A stamp is ``<out>/.stamps/<stage>.json``: the stage's key (a hash of its settings chained with the previous
stage's key, so changing an upstream setting re-runs everything downstream), how long it took, and a summary.
"""
from __future__ import annotations

import hashlib
import json
import os


def chain_key(previous_key: str, fingerprint: dict) -> str:
    """Hash of the previous stage's key and this stage's settings (a short hex string)."""
    text = json.dumps({"previous": previous_key, "settings": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_stamp(path: str) -> dict | None:
    """The stamp at ``path``, or None when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return stamp if isinstance(stamp, dict) and "key" in stamp else None


def write_stamp(path: str, key: str, seconds: float, summary: str, state: str = "done") -> None:
    """Record a stage's key; ``state`` is "started" while it runs and "done" once its outputs are complete."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"key": key, "state": state, "seconds": round(seconds, 2), "summary": summary}, f, indent=2)
    os.replace(tmp, path)
