"""A batch loader whose position can be saved and restored exactly (for checkpoint/resume)."""
from __future__ import annotations

from typing import Callable, Iterator

import torch


class ResumableDataLoader:
    """Yields collated batches; epoch ``e`` uses the permutation from ``seed + e``, so the order never depends
    on the global RNG, and ``state_dict()`` (epoch, batches done in it) is all a resume needs.

    Iterating yields the REST of the current epoch, then moves to the next epoch.
    Args:
        dataset: indexable with ``len``.
        batch_size: items per batch; the last incomplete batch is dropped when ``drop_last``.
        collate_fn: list of items -> batch.
    """

    def __init__(self, dataset, batch_size: int, collate_fn: Callable, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.collate_fn = dataset, int(batch_size), collate_fn
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0
        self.batches_done = 0
        if len(self) == 0:
            raise ValueError(f"the dataset has {len(dataset)} items, fewer than one batch of {batch_size}")

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.dataset)))
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.dataset), generator=g).tolist()

    def __iter__(self) -> Iterator:
        order = self._order(self.epoch)
        while self.batches_done < len(self):
            start = self.batches_done * self.batch_size
            idx = order[start:start + self.batch_size]
            self.batches_done += 1
            yield self.collate_fn([self.dataset[i] for i in idx])
        self.epoch += 1
        self.batches_done = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "seed": self.seed,
                "batch_size": self.batch_size, "num_items": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("num_items") not in (None, len(self.dataset)) or \
                state.get("batch_size") not in (None, self.batch_size):
            raise ValueError(f"dataloader state was saved for {state.get('num_items')} items in batches of "
                             f"{state.get('batch_size')}; this run has {len(self.dataset)} items in batches of "
                             f"{self.batch_size}")
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])
