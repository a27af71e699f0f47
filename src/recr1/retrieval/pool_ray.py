"""A searcher worker as a Ray actor (the pool's backend while Ray is initialized in the driver).

Placement, chosen on purpose:

- ``num_cpus=0``: the trainer's worker groups reserve whole-CPU bundles in placement groups; a searcher that asked
  for a CPU could wait forever for one on a small node (and so hang the reward), or hold one the trainer then cannot
  schedule. Ray's CPU count is a scheduling token, not a limit: the searchers work only while the reward runs.
- pinned to the driver's node (hard node affinity): the index path was checked there (the reward's preflight) and
  is a local path; on another node it may not exist.
"""
from __future__ import annotations

from collections import deque

from recr1.retrieval.pool_protocol import SearcherHost, WorkerDied, WorkerFailed

START_TIMEOUT_S = 600.0


class RayWorker:
    """Driver-side handle of one searcher actor (same methods as
    :class:`~recr1.retrieval.pool_subprocess.SubprocessWorker`)."""

    backend = "ray"

    def __init__(self, index: int, kind: str, index_dir: str, settings: dict):
        self.index, self.kind, self.index_dir, self.settings = index, kind, index_dir, dict(settings)
        self.info: dict = {}
        self._actor = None
        self._loading = None
        self._pending: deque = deque()  # object refs of the batches sent and not yet collected

    @property
    def pid(self) -> int | None:
        return self.info.get("pid")

    def launch(self) -> None:
        """Create the actor and ask it to load the searcher (returns at once)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        actor_cls = ray.remote(SearcherHost).options(num_cpus=0, max_restarts=0, max_concurrency=1,
                                                     scheduling_strategy=here)  # fmt: skip
        self._actor = actor_cls.remote()
        self._loading = self._actor.load.remote(self.kind, self.index_dir, self.settings)

    def wait_ready(self) -> dict:
        """Wait for the searcher to load (at most START_TIMEOUT_S); returns its description. Raises WorkerDied or
        WorkerFailed (``.error`` is the exception the actor raised)."""
        import ray

        try:
            self.info = self._get(self._loading, timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as exc:
            raise WorkerDied(f"searcher worker {self.index} (Ray actor) did not load within {START_TIMEOUT_S:.0f} s "
                             f"(is the driver's node out of memory?)") from exc
        return self.info

    def submit(self, queries: list[str], k: int) -> None:
        """Send one batch (returns at once; the actor runs its batches one at a time, in order)."""
        self._pending.append(self._actor.search.remote(queries, k))

    def submit_docs(self, doc_ids: list[str]) -> None:
        """Ask for the catalog text of ``doc_ids`` (returns at once; :meth:`collect` gives the texts in turn)."""
        self._pending.append(self._actor.doc_texts.remote(doc_ids))

    def collect(self):
        """The answer to the oldest request not yet collected: (encoded hits, stats delta) for a batch, the list of
        texts for :meth:`submit_docs`. Raises WorkerDied or WorkerFailed."""
        return self._get(self._pending.popleft())

    def abandon(self) -> None:
        """Forget the batches in flight."""
        self._pending.clear()

    @staticmethod
    def wait_any(workers: list[RayWorker]) -> list[RayWorker]:
        """The workers among ``workers`` whose oldest batch is done (or failed); blocks until one is."""
        import ray

        by_ref = {worker._pending[0]: worker for worker in workers}
        ready, _ = ray.wait(list(by_ref), num_returns=1)
        return [by_ref[ref] for ref in ready]

    def _get(self, ref, timeout=None):
        import ray

        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.RayActorError as exc:
            raise WorkerDied(f"searcher worker {self.index} (pid {self.pid}, Ray actor) is gone: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else RuntimeError(str(exc))
            raise WorkerFailed(cause, str(exc)) from exc

    def close(self) -> None:
        """Kill the actor (its process exits; Ray reaps it)."""
        actor, self._actor = self._actor, None
        if actor is None:
            return
        import ray

        if ray.is_initialized():
            ray.kill(actor, no_restart=True)
