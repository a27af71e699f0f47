"""Driver-side checkpoint bookkeeping: folder names, the "latest" tracker, dataloader + RNG state, pruning.

Layout under ``trainer.default_local_dir``::

    global_step_N/actor/         written by the actor workers (model, optimizer, scheduler, RNG per rank, HF export)
    global_step_N/critic/        written by the critic workers
    global_step_N/data.pt        the train dataloader's position
    global_step_N/driver_state.pt  the driver's RNG states, global step, adaptive-KL coefficient
    latest_checkpointed_iteration.txt   N of the last COMPLETE checkpoint (written last)
"""
from __future__ import annotations

import os
import random
import re
import shutil
from typing import Any

import numpy as np
import torch

CHECKPOINT_TRACKER = "latest_checkpointed_iteration.txt"
STEP_DIR_RE = re.compile(r"^global_step_(\d+)$")


def get_checkpoint_tracker_filename(root: str) -> str:
    return os.path.join(root, CHECKPOINT_TRACKER)


def step_dir(root: str, step: int) -> str:
    return os.path.join(root, f"global_step_{step}")


def parse_global_step(path: str) -> int:
    """N of a ``.../global_step_N`` folder; ValueError naming the path otherwise."""
    match = STEP_DIR_RE.match(os.path.basename(os.path.normpath(path)))
    if not match:
        raise ValueError(f"{path!r} is not a checkpoint folder: its name must be global_step_<N>")
    return int(match.group(1))


def find_latest_ckpt_path(root: str) -> str | None:
    """The folder named by ``latest_checkpointed_iteration.txt`` in ``root``; None when there is no tracker."""
    tracker = get_checkpoint_tracker_filename(root)
    if not os.path.isfile(tracker):
        return None
    with open(tracker) as f:
        text = f.read().strip()
    if not text.isdigit():
        raise ValueError(f"{tracker}: expected a step number, found {text!r}")
    path = step_dir(root, int(text))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{tracker} names step {text}, but {path} does not exist")
    return path


def write_tracker(root: str, step: int) -> None:
    """Record ``step`` as the latest complete checkpoint (atomic rename, so a crash never leaves half a file)."""
    tmp = get_checkpoint_tracker_filename(root) + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(step))
    os.replace(tmp, get_checkpoint_tracker_filename(root))


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_driver_state(path: str, dataloader_state: dict, driver_state: dict) -> None:
    """Write ``data.pt`` (dataloader position) and ``driver_state.pt`` (driver_state + this process's RNG)."""
    os.makedirs(path, exist_ok=True)
    torch.save(dataloader_state, os.path.join(path, "data.pt"))
    torch.save({**driver_state, "rng": rng_state()}, os.path.join(path, "driver_state.pt"))


def load_driver_state(path: str) -> tuple[dict, dict]:
    """(dataloader_state, driver_state) from a global_step_N folder; the RNG state is left in driver_state["rng"]."""
    data_file, state_file = os.path.join(path, "data.pt"), os.path.join(path, "driver_state.pt")
    for f in (data_file, state_file):
        if not os.path.isfile(f):
            raise FileNotFoundError(f"checkpoint {path} is incomplete: {os.path.basename(f)} is missing")
    return torch.load(data_file, weights_only=False), torch.load(state_file, weights_only=False)


def list_step_dirs(root: str) -> list[tuple[int, str]]:
    """(N, path) of every global_step_N folder in ``root``, oldest first."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        match = STEP_DIR_RE.match(name)
        if match and os.path.isdir(os.path.join(root, name)):
            found.append((int(match.group(1)), os.path.join(root, name)))
    return sorted(found)


def prune_checkpoints(root: str, keep: int | None) -> list[str]:
    """Delete all but the newest ``keep`` global_step_N folders (None or <= 0: keep all); returns the deleted."""
    if not keep or keep <= 0:
        return []
    doomed = [path for _, path in list_step_dirs(root)[:-keep]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def resolve_resume_path(resume_mode: str, root: str) -> str | None:
    """The checkpoint folder to resume from: auto -> the latest in ``root`` (None if none); disable -> None;
    anything else is a path to a global_step_N folder."""
    if resume_mode == "disable":
        return None
    if resume_mode == "auto":
        return find_latest_ckpt_path(root)
    path = os.path.abspath(os.path.expanduser(resume_mode))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"trainer.resume_mode={resume_mode!r}: no such folder")
    parse_global_step(path)
    return path
