"""WorkerGroup: the driver's handle on N workers, with every registered method bound as its own method.

Backends (Ray, in-process) only say how to start workers, submit one call to a set of ranks, and wait
for the answers; dispatch, collect, futures and per-role views are shared here.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from verl.single_controller.base.decorator import (
    Execute,
    RegisteredMethod,
    collect_rank_zero,
    get_predefined_dispatch_fn,
    get_registered,
)
from verl.single_controller.base.future import Waiter, WorkerGroupFuture


def unique_name_prefix(label: str = "verl") -> str:
    """``<label>_<8 hex digits>_``: a prefix for Ray names (placement groups, actors) that no other pool or
    group in the cluster uses, so several trainers or pools can live in one driver (Ray names must be unique)."""
    return f"{label}_{uuid.uuid4().hex[:8]}_"


def unwrap_actor_class(cls: Any) -> type:
    """The plain Python class behind a ``ray.remote(...)`` class (or the class itself)."""
    return getattr(cls, "__ray_actor_class__", cls)


class ResourcePool:
    """How many worker processes each node runs: ``process_on_nodes=[4, 4]`` is 2 nodes x 4 ranks.

    Ranks are numbered node by node. ``max_colocate_count`` is how many worker groups may share one
    slot (a GPU, or a CPU bundle).
    """

    def __init__(
        self, process_on_nodes: Optional[list[int]] = None, max_colocate_count: int = 10, n_gpus_per_node: int = 8
    ):
        self._store = list(process_on_nodes or [])
        for i, n in enumerate(self._store):
            if int(n) < 1:
                raise ValueError(f"process_on_nodes[{i}] must be >= 1, got {n}")
        self.max_colocate_count = max_colocate_count
        self.n_gpus_per_node = n_gpus_per_node

    def add_node(self, process_count: int) -> None:
        self._store.append(process_count)

    @property
    def world_size(self) -> int:
        return sum(self._store)

    @property
    def store(self) -> list[int]:
        return list(self._store)

    def __call__(self) -> list[int]:
        return self.store

    def local_world_size_list(self) -> list[int]:
        """For each rank, the number of ranks on its node."""
        return [n for n in self._store for _ in range(n)]

    def local_rank_list(self) -> list[int]:
        """For each rank, its index on its node."""
        return [i for n in self._store for i in range(n)]


class ClassWithInitArgs:
    """A worker class and the arguments to build it with, built later inside each worker process."""

    def __init__(self, cls: type, *args, **kwargs):
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    @property
    def user_cls(self) -> type:
        return unwrap_actor_class(self.cls)

    def __call__(self) -> Any:
        return self.user_cls(*self.args, **self.kwargs)


def require_worker_class(cls: type) -> type:
    """``cls`` itself, or a TypeError when it does not derive from Worker (which every group relies on)."""
    from verl.single_controller.base.worker import Worker

    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise TypeError(f"worker groups run subclasses of verl.single_controller.base.Worker, got {cls!r}")
    return cls


def registered_methods(cls: type) -> dict[str, RegisteredMethod]:
    """Name -> registration of every ``@register``ed method of ``cls`` (inherited ones included)."""
    found = {}
    for name in dir(cls):
        spec = get_registered(getattr(cls, name, None))
        if spec is not None:
            found[name] = spec
    return found


@dataclass
class _Lifecycle:
    """State shared by a group and all its per-role views (``spawn``): shutting one down stops them all."""

    group_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    shut_down: bool = False


class WorkerGroup:
    """The driver-side handle on ``world_size`` workers of one class.

    Every ``@register``ed method ``m`` of the worker class becomes ``worker_group.m(...)``:
    dispatch the arguments, run on the ranks, wait (unless ``blocking=False``), collect.
    ``call_timeout_s`` bounds every blocking wait (None: wait as long as the method runs; a failing
    or dying worker is reported at once either way). ``seed``: rank r's random / numpy / torch are
    seeded with ``seed + r`` before its worker is built (None: left as the process starts them).

    ``shutdown()`` (or leaving a ``with`` block) stops the workers and gives their resources back.
    """

    def __init__(
        self,
        resource_pool: Optional[ResourcePool] = None,
        call_timeout_s: Optional[float] = None,
        seed: Optional[int] = None,
    ):
        self._resource_pool = resource_pool
        self.call_timeout_s = call_timeout_s
        self.seed = None if seed is None else int(seed)
        self._workers: list = []
        self._bound_method_names: list[str] = []
        self._role: Optional[str] = None
        self._user_cls: Optional[type] = None
        self._lifecycle = _Lifecycle()

    # -- backend hooks ---------------------------------------------------------------------------
    def _submit(self, remote_name: str, ranks: list[int], calls: list[tuple[tuple, dict]]) -> list:
        """Start ``remote_name`` on each rank of ``ranks`` with its (args, kwargs); one handle per rank."""
        raise NotImplementedError

    def _stop_workers(self) -> None:
        """Stop the workers and release what they reserved (called once, by ``shutdown``)."""

    _waiter: Waiter  # module-level function that turns handles into outputs (picklable: futures travel)

    # -- public ----------------------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return len(self._workers)

    @property
    def resource_pool(self) -> Optional[ResourcePool]:
        return self._resource_pool

    @property
    def workers(self) -> list:
        return list(self._workers)

    @property
    def role(self) -> Optional[str]:
        """The role this view serves in a colocated group (None for a plain group)."""
        return self._role

    @property
    def group_id(self) -> str:
        """Identifies the group of workers; its per-role views (``spawn``) share it."""
        return self._lifecycle.group_id

    @property
    def is_shut_down(self) -> bool:
        return self._lifecycle.shut_down

    def shutdown(self) -> None:
        """Stop the workers and give back their resources (Ray: actors killed, and the pool's placement groups
        removed once no live group uses them; in-process: the worker is released). Idempotent; the group and
        every per-role view of it (``spawn``) refuse further calls."""
        if self._lifecycle.shut_down:
            return
        self._lifecycle.shut_down = True
        try:
            self._stop_workers()
        finally:
            self._workers.clear()  # the list is shared with the views: they see the group empty too

    def __enter__(self) -> "WorkerGroup":
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()

    def execute_all_async(self, method_name: str, *args, **kwargs) -> WorkerGroupFuture:
        """Run worker method ``method_name`` on every rank; lists of world-size length are split, the rest broadcast."""
        return self._run(method_name, method_name, get_predefined_dispatch_fn("ALL_TO_ALL"), Execute.ALL, args, kwargs)

    def execute_all_sync(self, method_name: str, *args, **kwargs) -> list:
        return self.execute_all_async(method_name, *args, **kwargs).get()

    execute_all = execute_all_async

    def execute_rank_zero_async(self, method_name: str, *args, **kwargs) -> WorkerGroupFuture:
        fns = get_predefined_dispatch_fn("ONE_TO_ALL")
        return self._run(method_name, method_name, fns, Execute.RANK_ZERO, args, kwargs)

    def execute_rank_zero_sync(self, method_name: str, *args, **kwargs) -> Any:
        return self.execute_rank_zero_async(method_name, *args, **kwargs).get()

    execute_rank_zero = execute_rank_zero_async

    def spawn(self, prefix_set: Iterable[str]) -> dict[str, "WorkerGroup"]:
        """One view per role of a colocated group: ``views["critic"].compute_values`` runs the critic's method.

        Views share this group's workers; nothing new is started.
        """
        role_classes = getattr(self._user_cls, "role_classes", None)
        if role_classes is None:
            raise TypeError(
                f"spawn: {self._user_cls} is not a colocated worker class (see create_colocated_worker_cls)"
            )
        views = {}
        for role in prefix_set:
            if role not in role_classes:
                raise KeyError(f"spawn: no role {role!r}; this group has roles {sorted(role_classes)}")
            view = copy.copy(self)
            for name in view._bound_method_names:
                view.__dict__.pop(name, None)
            view._bound_method_names = []
            view._role = role
            view._bind_worker_method(role_classes[role], prefix=f"{role}_")
            views[role] = view
        return views

    # -- internals -------------------------------------------------------------------------------
    def _bind_worker_method(self, user_cls: type, prefix: str = "") -> None:
        """Make every registered method of ``user_cls`` a method of this group (``prefix``: name on the worker)."""
        for name, spec in registered_methods(user_cls).items():
            if name in self._bound_method_names:
                continue
            if hasattr(type(self), name):
                raise ValueError(
                    f"{user_cls.__name__}.{name} clashes with WorkerGroup.{name}; rename the worker method"
                )
            setattr(self, name, self._make_caller(name, prefix + name, spec))
            self._bound_method_names.append(name)

    def _make_caller(self, name: str, remote_name: str, spec: RegisteredMethod) -> Callable:
        fns = get_predefined_dispatch_fn(spec.dispatch_mode)
        display = f"{self._role}.{name}" if self._role else name

        def call(*args, **kwargs):
            future = self._run(display, remote_name, fns, spec.execute_mode, args, kwargs)
            return future.get() if spec.blocking else future

        call.__name__ = name
        call.__doc__ = f"Runs {remote_name} on the workers ({spec.dispatch_mode}, {spec.execute_mode})."
        return call

    def _run(
        self, display: str, remote_name: str, fns: dict, execute_mode: Execute, args: tuple, kwargs: dict
    ) -> WorkerGroupFuture:
        if self._lifecycle.shut_down:
            raise RuntimeError(f"{display}: this worker group was shut down; build a new one")
        n = self.world_size
        rank_args, rank_kwargs = fns["dispatch_fn"](self, *args, **kwargs)
        for i, per_rank in enumerate([*rank_args, *rank_kwargs.values()]):
            if len(per_rank) != n:
                raise ValueError(
                    f"{display}: dispatch produced {len(per_rank)} entries for world size {n} (argument {i})"
                )
        ranks = list(range(n)) if execute_mode is Execute.ALL else [0]
        calls = [(tuple(a[r] for a in rank_args), {k: v[r] for k, v in rank_kwargs.items()}) for r in ranks]
        handles = self._submit(remote_name, ranks, calls)
        collect = fns["collect_fn"] if execute_mode is Execute.ALL else collect_rank_zero
        return WorkerGroupFuture(handles, collect, type(self)._waiter, display, ranks, n, self, self.call_timeout_s)
