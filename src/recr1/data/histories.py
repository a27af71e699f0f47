"""Per-user purchase histories and the leave-last-out splits of sequential recommendation.

Each user's reviews, ordered by time (ties keep file order), are their purchase sequence; an item bought
again is kept at its first purchase only (as the Amazon Reviews 2023 benchmark's last-out split does).
For a sequence ``i_1 .. i_n`` every example is "given the items before position t, predict i_t":

* transductive (users seen in training): ``i_n`` is the test target, ``i_{n-1}`` the val target, and
  ``i_t`` for ``t <= n-2`` are training targets;
* inductive (held-out users, a seeded fraction of all users): their ``i_n`` is an inductive test target
  and ``i_{n-1}`` an inductive val target; none of their purchases is trained on.

A history shorter than ``min_history`` items yields no example; histories are cut to the last
``max_history`` items (Rec-R1 shows the last 10).
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from recr1.data.amazon_review_raw import Review

SPLITS = ("train", "val", "test", "inductive_val", "inductive_test")


@dataclass(frozen=True)
class Example:
    """One next-item example: the user, the items before (oldest first) and the target item."""

    user_id: str
    history: tuple[str, ...]
    target: str
    timestamp: int


def user_sequences(reviews: Iterable[Review]) -> tuple[dict[str, list[Review]], int]:
    """``({user_id: reviews in time order, repeats dropped}, n_repeats)``; users in first-seen order."""
    by_user: dict[str, list[Review]] = defaultdict(list)
    for review in reviews:
        by_user[review.user_id].append(review)
    sequences, repeats = {}, 0
    for user, user_reviews in by_user.items():
        user_reviews.sort(key=lambda r: (r.timestamp, r.line))
        seen: set[str] = set()
        kept = []
        for r in user_reviews:
            if r.item_id in seen:
                repeats += 1
                continue
            seen.add(r.item_id)
            kept.append(r)
        sequences[user] = kept
    return sequences, repeats


def _example(user: str, seq: list[Review], t: int, max_history: int) -> Example:
    history = tuple(r.item_id for r in seq[max(0, t - max_history):t])
    return Example(user_id=user, history=history, target=seq[t].item_id, timestamp=seq[t].timestamp)


def split_sequences(sequences: dict[str, list[Review]], min_history: int = 1, max_history: int = 10,
                    inductive_fraction: float = 0.1, seed: int = 42) -> dict[str, list[Example]]:
    """Examples per split (see the module docstring), users in their input order within each split.

    Raises ValueError for ``min_history < 1``, ``max_history < min_history`` or a fraction outside [0, 1).
    """
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1 (a history needs an item), got {min_history}")
    if max_history < min_history:
        raise ValueError(f"max_history ({max_history}) must be >= min_history ({min_history})")
    if not 0.0 <= inductive_fraction < 1.0:
        raise ValueError(f"inductive_fraction must be in [0, 1), got {inductive_fraction}")
    users = [u for u, seq in sequences.items() if len(seq) > min_history]
    n_inductive = int(round(len(users) * inductive_fraction))
    held_out = set(random.Random(seed).sample(users, n_inductive))
    out: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for user in users:
        seq = sequences[user]
        n = len(seq)
        prefix = "inductive_" if user in held_out else ""
        out[prefix + "test"].append(_example(user, seq, n - 1, max_history))
        if n - 2 >= min_history:
            out[prefix + "val"].append(_example(user, seq, n - 2, max_history))
        if not prefix:
            out["train"].extend(_example(user, seq, t, max_history) for t in range(min_history, n - 2))
    return out
