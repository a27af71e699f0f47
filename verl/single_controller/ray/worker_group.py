"""Ray backend: one actor per placement-group bundle, calls as actor tasks, answers awaited with a bound."""
from __future__ import annotations

import re
import time
import uuid
from typing import Any, Optional, Sequence

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from verl.single_controller.base.errors import WorkerDiedError, WorkerError, WorkerTimeoutError, describe_pending
from verl.single_controller.base.worker import SEED_ENV_VAR, get_free_port, get_node_ip
from verl.single_controller.base.worker_group import ClassWithInitArgs, WorkerGroup, require_worker_class
from verl.single_controller.ray.resource_pool import RayResourcePool
from verl.utils.seeding import rank_seed


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _plain(error: Exception) -> str:
    """Ray's error text without terminal colour codes."""
    return _ANSI_ESCAPE.sub("", str(error))


# After one rank fails, how long to look for a peer that died: a dead peer makes the ranks waiting for it
# in a collective fail too, and the death (the cause) may be reported a moment after their errors.
FAILURE_GRACE_S = 2.0


def _failure_of(error: Exception, method: str, rank: int, world_size: int) -> WorkerError:
    if isinstance(error, ray.exceptions.RayTaskError):
        failure = WorkerError(method, rank, world_size, _plain(error))
        failure.__cause__ = getattr(error, "cause", None)
        return failure
    if isinstance(error, ray.exceptions.RayActorError):
        if error.actor_init_failed:  # the constructor raised: report it like any other raise
            return WorkerError(method, rank, world_size, _plain(error))
        return WorkerDiedError(method, rank, world_size, _plain(error))
    return WorkerError(method, rank, world_size, f"{type(error).__name__}: {_plain(error)}", what="failed")


def _failures_among(refs: list, rank_of: dict, method: str, world_size: int, timeout_s: float) -> list[WorkerError]:
    """The failures among ``refs`` that finish within ``timeout_s``."""
    if not refs:
        return []
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    failures = []
    for ref in ready:
        try:
            ray.get(ref)
        except ray.exceptions.RayError as e:
            failures.append(_failure_of(e, method, rank_of[ref], world_size))
    return failures


def _root_cause(failures: list[WorkerError]) -> WorkerError:
    """The death if a rank died (the others most likely failed because of it), else the lowest rank."""
    first = min(failures, key=lambda f: (not isinstance(f, WorkerDiedError), f.rank))
    others = sorted(f.rank for f in failures if f is not first)
    if others:
        first.args = (f"{first.args[0]}\n(rank(s) {others} failed as well, most likely as a consequence)",)
    return first


def wait_ray_outputs(
    refs: Sequence[Any], method: str, ranks: Sequence[int], world_size: int, timeout_s: Optional[float]
) -> list:
    """Outputs of ``refs`` (one per rank) in rank order.

    The first failure ends the wait (after a short look for a dead peer that caused it) with a
    WorkerError / WorkerDiedError naming method, rank and the remote traceback, even if other
    ranks hang in a collective. If ``timeout_s`` passes first: WorkerTimeoutError naming the ranks
    still running.
    """
    rank_of = {ref: rank for ref, rank in zip(refs, ranks)}
    outputs: dict = {}
    pending = list(refs)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while pending:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, pending = ray.wait(pending, num_returns=1, timeout=remaining)
        if not ready:
            late = [rank_of[r] for r in pending]
            raise WorkerTimeoutError(method, late[0], world_size, describe_pending(late, timeout_s))
        failures = []
        for ref in ready:
            try:
                outputs[ref] = ray.get(ref)
            except ray.exceptions.RayError as e:
                failures.append(_failure_of(e, method, rank_of[ref], world_size))
        if failures:
            failures += _failures_among(pending, rank_of, method, world_size, FAILURE_GRACE_S)
            raise _root_cause(failures)
    return [outputs[r] for r in refs]


class RayClassWithInitArgs(ClassWithInitArgs):
    """A worker class (plain or ``ray.remote``) + constructor arguments + Ray actor options."""

    def __init__(self, cls: type, *args, **kwargs):
        super().__init__(cls, *args, **kwargs)
        self._options: dict = {}
        self._actor_cls = cls if hasattr(cls, "__ray_actor_class__") else None

    @classmethod
    def from_class_with_init_args(cls, cia: ClassWithInitArgs) -> "RayClassWithInitArgs":
        return cia if isinstance(cia, RayClassWithInitArgs) else cls(cia.cls, *cia.args, **cia.kwargs)

    def update_options(self, options: dict) -> None:
        """Extra ``actor.options(...)`` (e.g. ``runtime_env``); rank placement and env are set by the group."""
        self._options.update(options)

    @property
    def options(self) -> dict:
        return dict(self._options)

    def create_actor(
        self, scheduling_strategy, num_cpus: float, num_gpus: float, env_vars: dict[str, str], name: str, detached: bool
    ):
        """Start one actor of this class with its rank environment."""
        if self._actor_cls is None:
            self._actor_cls = ray.remote(self.user_cls)
        options = dict(self._options)
        runtime_env = dict(options.pop("runtime_env", None) or {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **env_vars}
        options.update(
            scheduling_strategy=scheduling_strategy,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            runtime_env=runtime_env,
            name=name,
        )
        if detached:
            options["lifetime"] = "detached"
        return self._actor_cls.options(**options).remote(*self.args, **self.kwargs)


def _rendezvous_address(scheduling_strategy) -> tuple[str, int]:
    """Node IP and a free port, found on the node of rank 0's bundle (where rank 0 will listen)."""
    probe = ray.remote(num_cpus=0)(lambda: (get_node_ip(), get_free_port()))
    return ray.get(probe.options(scheduling_strategy=scheduling_strategy).remote())


class RayWorkerGroup(WorkerGroup):
    """``resource_pool.world_size`` Ray actors of one worker class, rank r on bundle r.

    Each actor gets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``
    and ``MASTER_PORT`` (a free port on rank 0's node) in its environment, and ``VERL_WORKER_SEED``
    (``seed + rank``) when ``seed`` is given. Construction waits for every actor's ``__init__`` (at most
    ``init_timeout_s``), so a constructor error surfaces here, after the actors were stopped again.
    ``shutdown()`` kills the actors and, once no other group uses the pool, removes its placement groups.
    """

    _waiter = staticmethod(wait_ray_outputs)

    def __init__(
        self,
        resource_pool: Optional[RayResourcePool] = None,
        ray_cls_with_init: Optional[ClassWithInitArgs] = None,
        bin_pack: bool = True,
        name_prefix: Optional[str] = None,
        detached: bool = False,
        call_timeout_s: Optional[float] = None,
        init_timeout_s: Optional[float] = 600.0,
        seed: Optional[int] = None,
        **unused: Any,
    ):
        super().__init__(resource_pool, call_timeout_s, seed)
        if resource_pool is None or ray_cls_with_init is None:
            raise ValueError("RayWorkerGroup needs a resource_pool and a ray_cls_with_init")
        if not ray.is_initialized():
            raise RuntimeError(
                "RayWorkerGroup: call ray.init() first (it joins the cluster named by RAY_ADDRESS, if set)"
            )
        cia = RayClassWithInitArgs.from_class_with_init_args(ray_cls_with_init)
        self._user_cls = require_worker_class(cia.user_cls)
        self.name_prefix = name_prefix or f"{self._user_cls.__name__}_{uuid.uuid4().hex[:6]}"
        resource_pool.register_worker_group(self.group_id)
        try:
            self._workers = self._start_workers(resource_pool, cia, detached)
            ready = [w.__ray_ready__.remote() for w in self._workers]
            ranks = list(range(len(ready)))
            wait_ray_outputs(ready, f"{self._user_cls.__name__}.__init__", ranks, len(ready), init_timeout_s)
        except BaseException:
            self.shutdown()
            raise
        self._bind_worker_method(self._user_cls)

    def _stop_workers(self) -> None:
        for worker in self._workers:
            try:
                ray.kill(worker, no_restart=True)
            except ValueError:  # not an actor handle any more (already gone)
                pass
        self._resource_pool.release_worker_group(self.group_id)

    def _start_workers(self, pool: RayResourcePool, cia: RayClassWithInitArgs, detached: bool) -> list:
        slots = [(pg, i) for pg in pool.get_placement_groups() for i in range(pg.bundle_count)]
        strategies = [PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i) for pg, i in slots]
        master_addr, master_port = _rendezvous_address(strategies[0])
        local_ranks, local_sizes = pool.local_rank_list(), pool.local_world_size_list()
        share = 1.0 / pool.max_colocate_count
        workers = self._workers  # filled as actors start, so a failure part-way still stops the started ones
        for rank, strategy in enumerate(strategies):
            env = {
                "RANK": str(rank),
                "WORLD_SIZE": str(len(strategies)),
                "LOCAL_RANK": str(local_ranks[rank]),
                "LOCAL_WORLD_SIZE": str(local_sizes[rank]),
                "MASTER_ADDR": str(master_addr),
                "MASTER_PORT": str(master_port),
            }
            if self.seed is not None:
                env[SEED_ENV_VAR] = str(rank_seed(self.seed, rank))
            workers.append(
                cia.create_actor(
                    strategy,
                    num_cpus=pool.num_cpus_per_process * share,
                    num_gpus=share if pool.use_gpu else 0,
                    env_vars=env,
                    name=f"{self.name_prefix}_{rank}",
                    detached=detached,
                )
            )
        return workers

    def _submit(self, remote_name: str, ranks: list[int], calls: list[tuple[tuple, dict]]) -> list:
        return [
            self._workers[r]._execute_registered.remote(remote_name, args, kwargs)
            for r, (args, kwargs) in zip(ranks, calls)
        ]
