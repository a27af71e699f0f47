"""One seed for python's ``random``, numpy's global RNG and torch (CPU and every GPU), and the per-rank seed rule."""
from __future__ import annotations

import random


def rank_seed(base_seed: int, rank: int) -> int:
    """The seed of rank ``rank`` in a run seeded with ``base_seed``: ``base_seed + rank``.

    Ranks must not share a seed: data-parallel ranks that sample copies of the same prompt with the same RNG
    stream would produce the same responses, and GRPO groups would collapse.
    """
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    return int(base_seed) + int(rank)


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy.random`` and torch (``torch.manual_seed`` also seeds every CUDA device)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy takes 32-bit seeds only
    torch.manual_seed(seed)
