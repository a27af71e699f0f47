"""Errors a driver sees when a call on a worker group goes wrong; the same types on every backend."""
from __future__ import annotations

from typing import Optional


class WorkerError(RuntimeError):
    """A registered method failed on a worker.

    Carries ``method`` (the name the driver called), ``rank`` (the first rank that failed) and
    ``remote_traceback`` (the worker's traceback as text), all of which are also in the message.
    """

    def __init__(self, method: str, rank: int, world_size: int, remote_traceback: str, what: str = "raised"):
        self.method = method
        self.rank = rank
        self.world_size = world_size
        self.remote_traceback = remote_traceback
        super().__init__(
            f"worker method '{method}' {what} on rank {rank} of {world_size}:\n{remote_traceback.rstrip()}"
        )

    def __reduce__(self):
        # Exceptions with custom __init__ arguments must say how to rebuild themselves to cross processes.
        return (type(self), (self.method, self.rank, self.world_size, self.remote_traceback))


class WorkerDiedError(WorkerError):
    """The worker process died (killed, crashed, out of memory) while running a method."""

    def __init__(self, method: str, rank: int, world_size: int, remote_traceback: str, what: str = "died"):
        super().__init__(method, rank, world_size, remote_traceback, what=what)


class WorkerTimeoutError(WorkerError, TimeoutError):
    """A blocking call did not finish within the worker group's ``call_timeout_s``."""

    def __init__(self, method: str, rank: int, world_size: int, remote_traceback: str, what: str = "timed out"):
        super().__init__(method, rank, world_size, remote_traceback, what=what)


def describe_pending(ranks: list[int], timeout_s: Optional[float]) -> str:
    """One line saying which ranks had not answered after ``timeout_s`` seconds."""
    return f"no answer after {timeout_s} s from rank(s) {sorted(ranks)} (a hung collective or a slow method)"
