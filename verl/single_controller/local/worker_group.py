"""In-process backend: the one worker (world size 1) lives in the driver process.

Same interface as RayWorkerGroup, so a trainer runs unchanged without Ray, and a plain debugger
steps from the driver straight into worker code. Calls run synchronously, so ``blocking=False``
methods return an already-finished future and ``call_timeout_s`` cannot interrupt a call. With
``seed``, this process's random / numpy / torch are seeded with ``seed + 0`` (rank 0's seed, as on
Ray) just before the worker is built. ``shutdown()`` has nothing to stop: it only drops the worker.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from verl.single_controller.base.errors import WorkerError
from verl.single_controller.base.worker import get_free_port
from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool, WorkerGroup, require_worker_class
from verl.utils.seeding import rank_seed, seed_everything


@dataclass
class LocalOutcome:
    """What one in-process call produced: a value, or an exception with its traceback text."""

    value: Any = None
    error: Optional[BaseException] = None
    traceback: str = ""


def wait_local_outputs(
    handles: Sequence[LocalOutcome], method: str, ranks: Sequence[int], world_size: int, timeout_s: Optional[float]
) -> list:
    """Outputs of finished in-process calls; the first failure becomes a WorkerError."""
    for rank, outcome in zip(ranks, handles):
        if outcome.error is not None:
            raise WorkerError(method, rank, world_size, outcome.traceback) from outcome.error
    return [h.value for h in handles]


def set_single_process_env() -> None:
    """Make this process rank 0 of a world of 1 (unless a launcher already did; a bigger world is an error)."""
    world_size = os.environ.get("WORLD_SIZE", "1")
    if world_size != "1":
        raise RuntimeError(f"the local backend runs a world of 1 process, but WORLD_SIZE={world_size} is set")
    defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(get_free_port()))


class LocalWorkerGroup(WorkerGroup):
    """A worker group of one worker built and called in this process."""

    _waiter = staticmethod(wait_local_outputs)

    def __init__(
        self,
        resource_pool: Optional[ResourcePool] = None,
        cls_with_init: Optional[ClassWithInitArgs] = None,
        call_timeout_s: Optional[float] = None,
        seed: Optional[int] = None,
        **unused_ray_options: Any,
    ):
        super().__init__(resource_pool, call_timeout_s, seed)
        if cls_with_init is None:
            raise ValueError("LocalWorkerGroup needs cls_with_init (a ClassWithInitArgs)")
        if resource_pool is not None and resource_pool.world_size != 1:
            raise ValueError(
                f"the local backend supports world size 1 only, the resource pool asks for {resource_pool.world_size}; "
                "use the ray backend for more"
            )
        require_worker_class(cls_with_init.user_cls)
        set_single_process_env()
        if self.seed is not None:
            seed_everything(rank_seed(self.seed, 0))
        try:
            worker = cls_with_init()
        except Exception as e:
            raise WorkerError(f"{cls_with_init.user_cls.__name__}.__init__", 0, 1, traceback.format_exc()) from e
        self._workers = [worker]
        self._user_cls = cls_with_init.user_cls
        self._bind_worker_method(self._user_cls)

    def _submit(self, remote_name: str, ranks: list[int], calls: list[tuple[tuple, dict]]) -> list[LocalOutcome]:
        outcomes = []
        for rank, (args, kwargs) in zip(ranks, calls):
            try:
                outcomes.append(LocalOutcome(value=self._workers[rank]._execute_registered(remote_name, args, kwargs)))
            except Exception as e:  # reported by wait_local_outputs, as a remote failure would be
                outcomes.append(LocalOutcome(error=e, traceback=traceback.format_exc()))
        return outcomes
