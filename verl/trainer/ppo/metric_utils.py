"""Metrics of one PPO step, with verl's names (critic/score/mean, response_length/mean, timing_s/gen, ...)."""
from __future__ import annotations

import contextlib
import fnmatch
import numbers
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from verl.protocol import DataProto
from verl.trainer.ppo.filter_groups import group_spread


@contextlib.contextmanager
def timer(name: str, timing_raw: dict[str, float]):
    """Add the wall time of the block to ``timing_raw[name]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timing_raw[name] = timing_raw.get(name, 0.0) + time.perf_counter() - start


def reduce_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Mean of each metric's values (workers return lists, one entry per micro-batch or rank)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().float().cpu().numpy()
        arr = np.asarray(value, dtype=np.float64).ravel()
        if arr.size:
            out[key] = float(np.mean(arr))
    return out


# Worker-side timings (seconds) arrive as meta_info["timing"] = {name: s} (verl's convention) or as metrics named
# timing_s/<name> or, from older rollouts, timing/<name>; all are logged as verl's timing_s/<name>.
_WORKER_TIMING_PREFIXES = ("timing_s/", "timing/")


def pop_worker_metrics(output: DataProto) -> dict[str, float]:
    """Take the metrics out of a worker call's output (``meta_info["metrics"]`` and ``meta_info["timing"]``) and
    return them reduced to one number each (mean over ranks and micro-batches), timings named ``timing_s/<name>``.

    The output's meta_info no longer holds them afterwards, so a later ``union`` does not carry them along.
    """
    raw = dict(output.meta_info.pop("metrics", None) or {})
    timing = dict(output.meta_info.pop("timing", None) or {})
    metrics = {}
    for key, value in raw.items():
        prefix = next((p for p in _WORKER_TIMING_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            metrics[key] = value
        else:
            timing[key[len(prefix):]] = value
    metrics.update({f"timing_s/{name}": value for name, value in timing.items()})
    return reduce_metrics(metrics)


def _stats(prefix: str, values: torch.Tensor) -> dict[str, float]:
    if values.numel() == 0:
        return {}
    values = values.float()
    return {f"{prefix}/mean": values.mean().item(), f"{prefix}/max": values.max().item(),
            f"{prefix}/min": values.min().item()}


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values[mask.bool()]


def compute_data_metrics(batch: DataProto, use_critic: bool = True) -> dict[str, float]:
    """Scores, rewards, advantages, returns, values and lengths of a finished step's batch.

    Needs batch keys token_level_scores, token_level_rewards, advantages, returns [B, R], responses [B, R],
    attention_mask [B, P+R], response_mask [B, R]; values [B, R] when ``use_critic``; with a non-tensor ``uid``
    also the zero-spread group fraction (``compute_group_metrics``). ``response_length/clip_ratio`` is the fraction
    of responses as long as R (rollouts pad to data.max_response_length): cut off, or ending exactly there.
    """
    b = batch.batch
    response_len = b["responses"].shape[-1]
    response_mask = b["response_mask"].bool() if "response_mask" in b.keys() \
        else b["attention_mask"][:, -response_len:].bool()
    prompt_mask = b["attention_mask"][:, :-response_len].bool()
    max_prompt_len = prompt_mask.shape[-1]
    prompt_length = prompt_mask.sum(-1).float()
    response_length = response_mask.sum(-1).float()

    metrics: dict[str, float] = {}
    metrics.update(_stats("critic/score", b["token_level_scores"].sum(-1)))
    metrics.update(_stats("critic/rewards", b["token_level_rewards"].sum(-1)))
    metrics.update(_stats("critic/advantages", _masked(b["advantages"], response_mask)))
    metrics.update(_stats("critic/returns", _masked(b["returns"], response_mask)))
    if use_critic and "values" in b.keys():
        values = _masked(b["values"], response_mask)
        returns = _masked(b["returns"], response_mask)
        metrics.update(_stats("critic/values", values))
        var_returns = torch.var(returns)
        metrics["critic/vf_explained_var"] = (1.0 - torch.var(returns - values) / (var_returns + 1e-5)).item()
    metrics.update(_stats("response_length", response_length))
    metrics["response_length/clip_ratio"] = (response_length == response_len).float().mean().item()
    metrics.update(_stats("prompt_length", prompt_length))
    metrics["prompt_length/clip_ratio"] = (prompt_length == max_prompt_len).float().mean().item()
    if "uid" in batch.non_tensor_batch:
        metrics.update(compute_group_metrics(b["token_level_scores"].sum(-1), batch.non_tensor_batch["uid"]))
    return metrics


def compute_timing_metrics(batch: DataProto, timing_raw: dict[str, float]) -> dict[str, float]:
    """timing_s/<name> for every timed section, and timing_per_token_ms/<name> where the token count is known.

    Generation is per generated response token: ``meta_info["num_gen_response_tokens"]`` when the step generated more
    than it trains on (dynamic sampling), else the batch's response tokens."""
    b = batch.batch
    response_len = b["responses"].shape[-1]
    n_prompt = b["attention_mask"][:, :-response_len].sum().item()
    n_response = b["attention_mask"][:, -response_len:].sum().item()
    n_generated = batch.meta_info.get("num_gen_response_tokens", n_response)
    tokens = {"gen": n_generated, **{name: n_prompt + n_response for name in
                                     ("ref", "values", "adv", "update_critic", "update_actor", "old_log_prob")}}
    metrics = {f"timing_s/{name}": sec for name, sec in timing_raw.items()}
    for name, count in tokens.items():
        if name in timing_raw and count > 0:
            metrics[f"timing_per_token_ms/{name}"] = timing_raw[name] * 1000 / count
    return metrics


def compute_throughout_metrics(batch: DataProto, timing_raw: dict[str, float], n_gpus: int) -> dict[str, float]:
    """perf/total_num_tokens, perf/time_per_step, perf/throughput (tokens per second per rank).

    (verl's name keeps the typo 'throughout'.)
    """
    total_tokens = int(sum(batch.meta_info.get("global_token_num", [])) or batch.batch["attention_mask"].sum().item())
    step_time = timing_raw["step"]
    return {"perf/total_num_tokens": total_tokens, "perf/time_per_step": step_time,
            "perf/throughput": total_tokens / (step_time * max(n_gpus, 1))}


def compute_memory_metrics() -> dict[str, float]:
    """Peak memory of this process: perf/max_memory_allocated_gb on CUDA; perf/cpu_peak_rss_gb always."""
    metrics = {}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    metrics["perf/cpu_peak_rss_gb"] = peak_kb / (1024 ** 3 if sys.platform == "darwin" else 1024 ** 2)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        metrics["perf/max_memory_allocated_gb"] = torch.cuda.max_memory_allocated() / 1024 ** 3
        metrics["perf/max_memory_reserved_gb"] = torch.cuda.max_memory_reserved() / 1024 ** 3
    return metrics


def compute_reward_extra_metrics(extra_info: dict[str, list], prefix: str = "reward",
                                 categorical_keys: Sequence[str] = ("reason",)) -> dict[str, float]:
    """Metrics from the extra keys a scorer returns (each a list of B values).

    Numbers (and bools) -> ``<prefix>/<key>/mean``, numbers also ``/max`` and ``/min`` (a bool's mean is already the
    fraction of samples). None values (the key does not apply to the sample) are left out. Strings become fractions
    ``<prefix>/<key>/<value>`` (of the samples that report the key, so a key's values sum to 1 whatever the batch size) only for the keys in
    ``categorical_keys`` (e.g. a failure reason); other text (a generated query, say) is per-sample data, not a
    metric: turning it into keys would add one tracker series per distinct string."""
    metrics: dict[str, float] = {}
    for key, values in extra_info.items():
        present = [v for v in values if v is not None]
        numbers_ = [float(v) for v in present if isinstance(v, (numbers.Number, np.number)) or isinstance(v, bool)]
        if numbers_ and len(numbers_) == len(present):
            metrics[f"{prefix}/{key}/mean"] = float(np.mean(numbers_))
            if not all(isinstance(v, (bool, np.bool_)) for v in present):
                metrics[f"{prefix}/{key}/max"] = float(np.max(numbers_))
                metrics[f"{prefix}/{key}/min"] = float(np.min(numbers_))
        elif key in categorical_keys:
            for value, count in Counter(str(v) for v in present).items():
                metrics[f"{prefix}/{key}/{value}"] = count / len(present)
    return metrics


def compute_group_metrics(scores: torch.Tensor, uids: Sequence) -> dict[str, float]:
    """``critic/score/zero_spread_group_frac``: the fraction of prompts (groups of samples sharing a uid, two or
    more) whose samples all scored the same, which gives GRPO no signal (DAPO's dynamic sampling drops them).

    scores: [B] each sample's score; uids: B group labels. Empty when no group has two samples (e.g. rollout.n=1).
    On the batch trained on, so 0 by construction under algorithm.filter_groups (its train/num_dropped_groups
    counts the groups it dropped).
    """
    if len(uids) != len(scores):
        raise ValueError(f"{len(uids)} uids for {len(scores)} scores")
    spreads = [has_spread for count, has_spread in group_spread(uids, scores.tolist()).values() if count > 1]
    if not spreads:
        return {}
    return {"critic/score/zero_spread_group_frac": spreads.count(False) / len(spreads)}


def process_validation_metrics(data_sources: list[str], scores: list[float],
                               extra_info: dict[str, list] | None = None, core_keys: Sequence[str] = (),
                               categorical_keys: Sequence[str] = ()) -> dict[str, float]:
    """Per-data_source validation means: ``val-core/<data_source>/reward/mean``; ``val-core/<data_source>/<key>``
    for each scorer extra that ``core_keys`` names (reward_model.val_core_extra_keys: names or fnmatch patterns such as
    ``ndcg@*``, the numbers a task's users watch); ``val-aux/<data_source>/<key>/mean`` for the other numeric extras
    and ``val-aux/<data_source>/<key>/<value>`` (fractions) for the ``categorical_keys``. None values are left out.

    Raises:
        ValueError: a ``core_keys`` entry that matches no extra the scorer returned as numbers (the message lists
            what it returned).
    """
    extra_info = extra_info or {}
    numeric = {key for key, values in extra_info.items()
               if all(isinstance(v, (numbers.Number, np.number)) for v in values if v is not None)}
    core = set()
    for pattern in core_keys:
        matched = {key for key in numeric if fnmatch.fnmatchcase(key, pattern)}
        if not matched:
            raise ValueError(f"reward_model.val_core_extra_keys names {pattern!r}, which matches no extra the val "
                             f"scorer returned as numbers; its extras: {sorted(extra_info)}")
        core |= matched
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, source in enumerate(data_sources):
        by_source[str(source)].append(i)
    metrics = {}
    for source, rows in sorted(by_source.items()):
        metrics[f"val-core/{source}/reward/mean"] = float(np.mean([scores[i] for i in rows]))
        for key, values in extra_info.items():
            picked = [values[i] for i in rows if values[i] is not None]
            if not picked:
                continue
            if all(isinstance(v, (numbers.Number, np.number)) for v in picked):
                name = f"val-core/{source}/{key}" if key in core else f"val-aux/{source}/{key}/mean"
                metrics[name] = float(np.mean(picked))
            elif key in categorical_keys:
                for value, count in Counter(str(v) for v in picked).items():
                    metrics[f"val-aux/{source}/{key}/{value}"] = count / len(picked)
    return metrics
