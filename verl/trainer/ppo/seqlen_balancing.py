"""Reorder a batch so every data-parallel rank gets the same number of rows and about the same tokens."""
from __future__ import annotations

import heapq

import torch


def balanced_partitions(lengths: list[int], k: int) -> list[list[int]]:
    """Split row indices into ``k`` groups of equal size (len(lengths) % k == 0) with near-equal length sums.

    Greedy: longest rows first, each to the lightest group that still has room.
    """
    n = len(lengths)
    if n % k != 0:
        raise ValueError(f"{n} rows do not split into {k} equal groups")
    size = n // k
    groups: list[list[int]] = [[] for _ in range(k)]
    heap = [(0, g) for g in range(k)]  # (token sum, group), only groups with room
    for i in sorted(range(n), key=lambda i: (-lengths[i], i)):
        total, g = heapq.heappop(heap)
        groups[g].append(i)
        if len(groups[g]) < size:
            heapq.heappush(heap, (total + lengths[i], g))
    return [sorted(group) for group in groups]


def balance_order(attention_mask: torch.Tensor, world_size: int) -> tuple[list[int], dict[str, float]]:
    """Row order that gives rank r the r-th balanced group (DP_COMPUTE_PROTO chunks in order).

    attention_mask: [B, T]. Returns (order, metrics global_seqlen/{min,max,minmax_diff,balanced_min,
    balanced_max,mean}) where min/max are the per-rank token sums before balancing.
    """
    lengths = attention_mask.sum(-1).tolist()
    n = len(lengths)
    chunk = n // world_size
    before = [sum(lengths[r * chunk:(r + 1) * chunk]) for r in range(world_size)]
    groups = balanced_partitions(lengths, world_size)
    after = [sum(lengths[i] for i in g) for g in groups]
    metrics = {"global_seqlen/min": min(before), "global_seqlen/max": max(before),
               "global_seqlen/minmax_diff": max(before) - min(before), "global_seqlen/balanced_min": min(after),
               "global_seqlen/balanced_max": max(after), "global_seqlen/mean": sum(lengths) / world_size}
    return [i for g in groups for i in g], metrics
