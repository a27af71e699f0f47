"""The reward computed on a driver thread while the workers run the log-prob / reference / value passes.

verl's ``reward_model.launch_reward_fn_async``: the reward of a step depends only on the generated batch, and the
passes that follow generation (old log-probs, reference log-probs, values) do not read it, so the driver starts the
reward as soon as the batch is final and collects it where the advantages need it. A retrieval reward (one search
per unique query, on the CPU) then hides behind the passes (on the GPUs) instead of adding to the step.

The thread gets a view of the batch (its own containers over the same tensors and arrays): the passes add keys to
the step's batch while the reward reads it, and neither sees the other's keys. Timing: ``timing_s/reward`` keeps its
meaning (how long the reward took), ``timing_s/reward_wait`` is how long the step then waited for it (0 when it was
fully hidden); with a synchronous reward the two are equal.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from verl.protocol import DataProto

RewardResult = tuple[torch.Tensor, dict[str, list]]


def launch_reward_async(config) -> bool:
    """Whether the trainer overlaps the reward with the passes: ``reward_model.launch_reward_fn_async``, where null
    means "under the Ray backend" (the workers are other processes; under the local backend the worker would share the
    driver's GIL with the reward thread, and in-process search holds it: measured slower, scripts/bench/
    reward_overlap.py). Never with dynamic sampling, which needs the scores to pick the groups it keeps."""
    if config.algorithm.filter_groups.enable:
        return False
    setting = config.reward_model.get("launch_reward_fn_async")
    return config.trainer.backend == "ray" if setting is None else bool(setting)


def batch_view(batch: DataProto) -> DataProto:
    """A DataProto with new containers (TensorDict, non-tensor dict, meta_info dict) over ``batch``'s tensors and
    arrays: keys later added to either are not seen by the other. No tensor is copied."""
    keys = list(batch.batch.keys()) if batch.batch is not None else None
    return batch.select(batch_keys=keys)


class PendingReward:
    """A reward being computed; :meth:`result` waits for it and records the timing."""

    def __init__(self, future: Future):
        self._future = future

    def done(self) -> bool:
        """True once the reward has finished (or failed)."""
        return self._future.done()

    def result(self, timing_raw: dict[str, float]) -> RewardResult:
        """(token_level_scores [B, R], reward extras {key: B values}). Adds the reward's own duration to
        ``timing_raw["reward"]`` and the time spent waiting here to ``timing_raw["reward_wait"]``. Re-raises what the
        reward function raised."""
        start = time.perf_counter()
        try:
            scores, extras, seconds = self._future.result()
        finally:
            timing_raw["reward_wait"] = timing_raw.get("reward_wait", 0.0) + time.perf_counter() - start
        timing_raw["reward"] = timing_raw.get("reward", 0.0) + seconds
        return scores, extras


class RewardLauncher:
    """Runs ``compute(batch)`` on one background thread (one reward at a time, in launch order).

    Args:
        compute: ``DataProto -> (token_level_scores [B, R], extras)``, e.g. ``partial(compute_reward,
            reward_fn=...)``.
    """

    def __init__(self, compute: Callable[[DataProto], RewardResult]):
        self._compute = compute
        self._pool: ThreadPoolExecutor | None = None

    def launch(self, batch: DataProto) -> PendingReward:
        """Start the reward of ``batch`` (a view of it: see :func:`batch_view`) and return at once."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward")
        return PendingReward(self._pool.submit(self._timed, batch_view(batch)))

    def _timed(self, batch: DataProto) -> tuple[torch.Tensor, dict, float]:
        start = time.perf_counter()
        scores, extras = self._compute(batch)
        return scores, extras, time.perf_counter() - start

    def shutdown(self) -> None:
        """Wait for a running reward and stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
