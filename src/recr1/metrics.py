"""Ranking metrics: NDCG@k, Recall@k, MRR, hit rate. Pure functions over id lists.

Conventions shared by every function here:
- ``ranked_ids`` is best first; rank r (1-based) discounts by ``1 / log2(r + 1)``.
- an id that appears again further down the ranking counts only at its first (best) rank;
- ``targets`` are the relevant ids; repeated target ids count once;
- empty inputs (no ranking, no targets, k <= 0) give 0.0.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence


def _unique(ids: Iterable[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(ids))


def first_ranks(ranked_ids: Sequence[Hashable], targets: Iterable[Hashable], k: int | None = None) -> dict:
    """``{target: 1-based rank}`` for the targets found in the first ``k`` ranked ids (all when None)."""
    wanted = set(targets)
    found: dict = {}
    limit = len(ranked_ids) if k is None else min(k, len(ranked_ids))
    for position in range(limit):
        doc = ranked_ids[position]
        if doc in wanted and doc not in found:
            found[doc] = position + 1
            if len(found) == len(wanted):
                break
    return found


def ndcg_at_k(
    ranked_ids: Sequence[Hashable],
    targets: Iterable[Hashable],
    k: int,
    gains: Mapping[Hashable, float] | None = None,
) -> float:
    """Normalized discounted cumulative gain of the first ``k`` ranked ids.

    Args:
        ranked_ids: retrieved ids, best first (length n).
        targets: relevant ids (duplicates count once).
        k: cut-off.
        gains: optional graded relevance ``{id: gain}`` for the targets; a target missing from it
            has gain 1.0, an id that is not a target has gain 0. Gains are linear
            (``gain / log2(rank + 1)``); binary relevance when None.

    Returns:
        DCG@k / IDCG@k in [0, 1], where IDCG@k ranks the unique targets by gain.
    """
    unique_targets = _unique(targets)
    if k <= 0 or not unique_targets or len(ranked_ids) == 0:
        return 0.0

    def gain(doc) -> float:
        return 1.0 if gains is None else float(gains.get(doc, 1.0))

    ranks = first_ranks(ranked_ids, unique_targets, k)
    dcg = sum(gain(doc) / math.log2(rank + 1) for doc, rank in ranks.items())
    ideal = sorted((gain(doc) for doc in unique_targets), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked_ids: Sequence[Hashable], targets: Iterable[Hashable], k: int) -> float:
    """Fraction of the unique targets found in the first ``k`` ranked ids."""
    unique_targets = _unique(targets)
    if k <= 0 or not unique_targets or len(ranked_ids) == 0:
        return 0.0
    return len(first_ranks(ranked_ids, unique_targets, k)) / len(unique_targets)


def hit_rate_at_k(ranked_ids: Sequence[Hashable], targets: Iterable[Hashable], k: int) -> float:
    """1.0 when any target is in the first ``k`` ranked ids, else 0.0."""
    unique_targets = _unique(targets)
    if k <= 0 or not unique_targets or len(ranked_ids) == 0:
        return 0.0
    return 1.0 if first_ranks(ranked_ids, unique_targets, k) else 0.0


def mrr(ranked_ids: Sequence[Hashable], targets: Iterable[Hashable]) -> float:
    """Reciprocal rank of the best-ranked target (no cut-off), 0.0 when none is ranked."""
    unique_targets = _unique(targets)
    if not unique_targets or len(ranked_ids) == 0:
        return 0.0
    ranks = first_ranks(ranked_ids, unique_targets)
    return 1.0 / min(ranks.values()) if ranks else 0.0


def ndcg_from_ranks(ranks: Mapping[Hashable, int], n_targets: int, k: int) -> float:
    """Binary-relevance NDCG@k from ``first_ranks`` (found over at least the top k) and the number of unique targets;
    summed in the same order as :func:`ndcg_at_k`, so the value is bit-identical to it."""
    if k <= 0 or n_targets <= 0:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank in ranks.values() if rank <= k)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(k, n_targets)))
    return dcg / idcg if idcg > 0 else 0.0


def metrics_from_ranks(ranks: Mapping[Hashable, int], n_targets: int, k: int) -> dict[str, float]:
    """:func:`retrieval_metrics` from ``first_ranks`` found over at least the top ``k`` ids (one pass over a ranking
    serves every cut-off; the reward shares it with its own NDCG@k)."""
    if k <= 0 or n_targets <= 0:
        return {"ndcg@10": 0.0, f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, "mrr": 0.0}
    in_k = {doc: rank for doc, rank in ranks.items() if rank <= k}
    return {"ndcg@10": ndcg_from_ranks(in_k, n_targets, 10), f"ndcg@{k}": ndcg_from_ranks(in_k, n_targets, k),
            f"recall@{k}": len(in_k) / n_targets, "mrr": 1.0 / min(in_k.values()) if in_k else 0.0}


def retrieval_metrics(ranked_ids: Sequence[Hashable], targets: Iterable[Hashable], k: int) -> dict[str, float]:
    """The per-request metrics that ``recr1.eval`` reports and validation logs, named as both name them.

    Args:
        ranked_ids: retrieved ids, best first (only the first ``k`` count).
        targets: relevant ids.
        k: the evaluation cut-off (``recr1.eval``'s 100; the reward's ``k_eval``).

    Returns:
        ``{"ndcg@10", "ndcg@<k>", "recall@<k>", "mrr"}`` of ``ranked_ids[:k]``, where MRR is the reciprocal rank of
        the best target within the first ``k`` ids (0 beyond them, as for an evaluation that retrieves k); equal to
        :func:`ndcg_at_k`, :func:`recall_at_k` and :func:`mrr` on ``ranked_ids[:k]``.
    """
    unique_targets = _unique(targets)
    if len(ranked_ids) == 0:
        return metrics_from_ranks({}, 0, k)
    return metrics_from_ranks(first_ranks(ranked_ids, unique_targets, k), len(unique_targets), k)
