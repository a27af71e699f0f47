"""The result of a non-blocking worker-group call."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

# waiter(handles, method, ranks, world_size, timeout_s) -> one output per handle, or raises WorkerError
Waiter = Callable[[Sequence[Any], str, Sequence[int], int, Optional[float]], list]
# collect_fn(worker_group, outputs) -> the value the driver sees (the collect half of a dispatch mode)
CollectFn = Callable[[Any, list], Any]


class WorkerGroupFuture:
    """Per-rank handles of a call still running, plus how to turn their outputs into one value.

    ``get()`` blocks until every rank answers (or one fails, or ``timeout_s`` passes) and returns
    what the blocking call would have returned. A future from a DataProto-returning method can be
    passed straight into a ``DP_COMPUTE_PROTO`` / ``DP_COMPUTE_METRIC`` method: each worker then
    fetches the pieces itself, so the driver does not wait in between.
    """

    def __init__(
        self,
        handles: Sequence[Any],
        collect_fn: CollectFn,
        waiter: Waiter,
        method: str,
        ranks: Sequence[int],
        world_size: int,
        worker_group: Any = None,
        default_timeout_s: Optional[float] = None,
    ):
        self.handles = list(handles)
        self.collect_fn = collect_fn
        self.waiter = waiter
        self.method = method
        self.ranks = list(ranks)
        self.world_size = world_size
        self.worker_group = worker_group
        self.default_timeout_s = default_timeout_s

    def get(self, timeout_s: Optional[float] = None) -> Any:
        """Wait for all ranks (at most ``timeout_s``, default: the group's call timeout) and collect."""
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        outputs = self.waiter(self.handles, self.method, self.ranks, self.world_size, timeout)
        return self.collect_fn(self.worker_group, outputs)

    def __getstate__(self):
        # Workers receive futures as inputs; the driver-side worker group must not travel with them.
        state = dict(self.__dict__)
        state["worker_group"] = None
        return state

    def __repr__(self) -> str:
        return f"WorkerGroupFuture(method={self.method!r}, ranks={self.ranks})"
