"""DAPO dynamic sampling (verl's ``algorithm.filter_groups``): train only on prompt groups whose metric varies.

A group is the rollout.n samples of one prompt (one ``uid``). When all of them get the same metric (every reward 0,
say), the group-relative advantages are all 0: the group costs an update and teaches nothing. The trainer drops such
groups and generates more prompts (rounds of data.gen_batch_size) until data.train_batch_size groups remain; the
first that many, in generation order, are trained on (``GroupCollector``). Pure bookkeeping: no worker calls.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional

import numpy as np

from verl.protocol import DataProto

# metrics read from the reward tensors; any other name is a numeric key the scorer returns (verl's "acc", say)
SEQUENCE_METRICS = ("seq_reward", "seq_final_reward", "score")
ON_EXHAUSTED = ("error", "train")


def sample_metric(batch: DataProto, metric: str, reward_extra: dict[str, list]) -> np.ndarray:
    """The filtering metric of every sample: float64 [B].

    seq_reward: the sum of ``token_level_scores`` [B, R]. seq_final_reward: the sum of ``token_level_rewards`` when the
    batch has them, else of the scores (the same thing without KL in the reward). score: the scorer's ``score`` extra
    when it returns one, else the sequence score. Any other name: that key of ``reward_extra`` (B numbers).
    """
    if metric in SEQUENCE_METRICS and not (metric == "score" and "score" in reward_extra):
        keys = batch.batch.keys()
        key = "token_level_rewards" if metric == "seq_final_reward" and "token_level_rewards" in keys \
            else "token_level_scores"
        if key not in keys:
            raise KeyError(f"algorithm.filter_groups.metric={metric!r} needs '{key}' in the batch (scored before "
                           f"filtering); the batch has {sorted(keys)}")
        values = batch.batch[key].sum(-1).double().cpu().numpy()
    else:
        if metric not in reward_extra:
            raise KeyError(f"algorithm.filter_groups.metric={metric!r} is neither one of {', '.join(SEQUENCE_METRICS)} "
                           f"nor a key the scorer returns (its extra keys: {sorted(reward_extra) or 'none'})")
        raw = list(reward_extra[metric])
        bad = [v for v in raw if isinstance(v, str) or not isinstance(v, (numbers.Number, np.number))]
        if bad or len(raw) != len(batch):
            raise ValueError(f"algorithm.filter_groups.metric={metric!r}: the scorer's '{metric}' must be a number for "
                             f"each of the {len(batch)} samples; got {len(raw)} values, e.g. {bad[:3] or raw[:3]}")
        values = np.asarray(raw, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"algorithm.filter_groups.metric={metric!r} has non-finite values: "
                         f"{values[~np.isfinite(values)][:5].tolist()}")
    return values


def group_spread(uids, values) -> dict:
    """{uid: (number of samples, whether the group has a spread)} from uids [B] and values [B].

    Spread is max > min, so identical values never count (verl's np.std rounds three 0.1s to 1.4e-17 > 0)."""
    stats: dict = {}
    for uid, value in zip(uids, values):
        count, low, high = stats.get(uid, (0, value, value))
        stats[uid] = (count + 1, min(low, value), max(high, value))
    return {uid: (count, high > low) for uid, (count, low, high) in stats.items()}


def kept_rows(uids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which samples belong to a group with spread (``group_spread``): bool [B] from uids [B] (object) and values
    [B]. A group of one sample is kept, as verl does (nothing to compare it with)."""
    spread = group_spread(uids, values)
    return np.array([spread[u][1] or spread[u][0] == 1 for u in uids], dtype=bool)


def groups_in_order(uids: np.ndarray) -> list:
    """The distinct uids, in order of first appearance."""
    return list(dict.fromkeys(uids.tolist()))


def usable_group_count(num_groups: int, n: int, world_size: int) -> int:
    """The most of ``num_groups`` groups (n samples each) whose samples split evenly over ``world_size`` ranks."""
    step = world_size // math.gcd(n, world_size)
    return num_groups - num_groups % step


def take_extras(extras: dict[str, list], rows: np.ndarray, num_rows: int) -> dict[str, list]:
    """The scorer extras ({key: B values}) of ``rows`` (int indices); a key missing from a round is None there."""
    return {key: [values[i] for i in rows] if len(values) == num_rows else [None] * len(rows)
            for key, values in extras.items()}


def concat_extras(parts: list[dict[str, list]], lengths: list[int]) -> dict[str, list]:
    """Join per-round extras; a key that a round lacks is None for its rows."""
    keys = list(dict.fromkeys(k for part in parts for k in part))
    return {k: [v for part, n in zip(parts, lengths) for v in part.get(k, [None] * n)] for k in keys}


class GroupCollector:
    """The groups with spread from the generation rounds of one training step.

    ``add`` each scored round; generate another while ``need_more()``; then ``finish()`` gives the batch to train on.

    Args:
        metric: see ``sample_metric``.
        train_batch_size: groups to train on (data.train_batch_size).
        max_num_gen_batches: rounds allowed per step; <= 0: no limit (verl).
        on_exhausted: at the limit with too few groups: "error" (verl) or "train" on the usable groups there are
            (none usable: the first groups of the last round as generated, whose GRPO advantages are 0).
        n: samples per group (rollout.n); world_size: data-parallel ranks the update splits the samples over.
    """

    def __init__(self, metric: str, train_batch_size: int, max_num_gen_batches: int = 0, on_exhausted: str = "error",
                 n: int = 1, world_size: int = 1):
        if on_exhausted not in ON_EXHAUSTED:
            raise ValueError(f"algorithm.filter_groups.on_exhausted={on_exhausted!r} is not one of "
                             f"{', '.join(ON_EXHAUSTED)}")
        self.metric, self.target = metric, int(train_batch_size)
        self.max_rounds, self.on_exhausted = int(max_num_gen_batches), on_exhausted
        self.n, self.world_size = int(n), int(world_size)
        self.num_gen_batches = self.num_dropped = self.gen_response_tokens = 0
        self._batches: list[DataProto] = []
        self._extras: list[dict[str, list]] = []
        self._groups: list = []
        self._last_round: Optional[tuple[DataProto, dict[str, list]]] = None

    @classmethod
    def from_config(cls, config, world_size: int) -> "GroupCollector":
        fg = config.algorithm.filter_groups
        return cls(str(fg.metric), int(config.data.train_batch_size), int(fg.max_num_gen_batches),
                   str(fg.get("on_exhausted", "error")), int(config.actor_rollout_ref.rollout.n), world_size)

    @property
    def num_kept(self) -> int:
        """Groups with spread collected so far."""
        return len(self._groups)

    def at_limit(self) -> bool:
        return 0 < self.max_rounds <= self.num_gen_batches

    def need_more(self) -> bool:
        """Another round is wanted and allowed."""
        return self.num_kept < self.target and not self.at_limit()

    def add(self, batch: DataProto, reward_extra: dict[str, list]) -> None:
        """One scored round: batch with non-tensor ``uid`` [B], token_level_scores [B, R] (and response_mask [B, R],
        counted for the per-token generation time); reward_extra {key: B values}."""
        self.num_gen_batches += 1
        self._last_round = (batch, reward_extra)
        if "response_mask" in batch.batch.keys():
            self.gen_response_tokens += int(batch.batch["response_mask"].sum().item())
        uids = batch.non_tensor_batch["uid"]
        keep = kept_rows(uids, sample_metric(batch, self.metric, reward_extra))
        self.num_dropped += len(groups_in_order(uids[~keep]))
        rows = np.nonzero(keep)[0]
        if len(rows):
            self._batches.append(batch.select_idxs(rows))
            self._extras.append(take_extras(reward_extra, rows, len(batch)))
            self._groups.extend(groups_in_order(uids[rows]))

    def finish(self) -> tuple[DataProto, dict[str, list], dict[str, float]]:
        """(batch of the groups to train on, their scorer extras, metrics train/num_gen_batches, train/num_kept_groups
        (trained on), train/num_dropped_groups (no spread), train/num_unused_groups (spread, but beyond the batch)).

        Raises RuntimeError when too few groups have spread with on_exhausted=error (verl). With "train", when not
        one group with spread splits over the ranks, the step trains on the first groups of the last round as they
        were generated (a warning says so): their GRPO advantages are 0, so only the KL / entropy terms move the
        policy, and a run whose policy has collapsed (every sample alike) goes on instead of stopping."""
        count = min(self.num_kept, self.target)
        if self.num_kept < self.target:
            where = (f"after {self.num_gen_batches} generation round(s) (algorithm.filter_groups.max_num_gen_batches="
                     f"{self.max_rounds}), {self.num_kept} of data.train_batch_size={self.target} groups have a spread "
                     f"in algorithm.filter_groups.metric={self.metric!r} ({self.num_dropped} groups had none)")
            if self.on_exhausted == "error":
                raise RuntimeError(f"{where}. Raise max_num_gen_batches (<= 0: no limit) or data.gen_batch_size, check "
                                   f"that the data is not too hard or too easy, or set "
                                   f"algorithm.filter_groups.on_exhausted=train to train on the groups there are")
            count = usable_group_count(self.num_kept, self.n, self.world_size)
            if count == 0:
                return self._last_round_as_generated(where)
        chosen = set(self._groups[:count])
        batch = DataProto.concat(self._batches) if len(self._batches) > 1 else self._batches[0]
        extras = concat_extras(self._extras, [len(b) for b in self._batches])
        rows = np.array([i for i, uid in enumerate(batch.non_tensor_batch["uid"]) if uid in chosen], dtype=np.int64)
        metrics = {"train/num_gen_batches": self.num_gen_batches, "train/num_kept_groups": count,
                   "train/num_dropped_groups": self.num_dropped, "train/num_unused_groups": self.num_kept - count}
        return batch.select_idxs(rows), take_extras(extras, rows, len(batch)), metrics


    def _last_round_as_generated(self, where: str) -> tuple[DataProto, dict[str, list], dict[str, float]]:
        batch, extras = self._last_round
        groups = groups_in_order(batch.non_tensor_batch["uid"])
        count = usable_group_count(min(len(groups), self.target), self.n, self.world_size)
        if count == 0:
            raise RuntimeError(f"{where}: not even the last round's {len(groups)} x rollout.n={self.n} samples make "
                               f"one group's share on each of {self.world_size} ranks, so there is nothing to train on")
        warnings.warn(f"{where}: training on the first {count} groups of the last round as generated (no spread: "
                      "their GRPO advantages are 0)", stacklevel=3)
        chosen = set(groups[:count])
        rows = np.array([i for i, uid in enumerate(batch.non_tensor_batch["uid"]) if uid in chosen], dtype=np.int64)
        metrics = {"train/num_gen_batches": self.num_gen_batches, "train/num_kept_groups": 0,
                   "train/num_dropped_groups": self.num_dropped, "train/num_unused_groups": self.num_kept}
        return batch.select_idxs(rows), take_extras(extras, rows, len(batch)), metrics


def accumulate_round_metrics(total: dict[str, float], round_metrics: dict[str, float]) -> None:
    """Merge one generation round's worker metrics into the step's: timings (timing_s/...) add up over the rounds,
    anything else keeps the last round's value."""
    for key, value in round_metrics.items():
        total[key] = total.get(key, 0.0) + value if key.startswith("timing_s/") else value


def describe_progress(collector: GroupCollector) -> Optional[str]:
    """A line for the log while more rounds are needed (verl prints the same counts)."""
    if not collector.need_more():
        return None
    limit = collector.max_rounds if collector.max_rounds > 0 else "no limit"
    return (f"[filter_groups] {collector.num_kept} of {collector.target} groups with spread after "
            f"{collector.num_gen_batches} generation round(s) (limit {limit}): generating more")
