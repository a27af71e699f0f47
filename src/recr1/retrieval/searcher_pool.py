"""Several searcher processes over one on-disk index, used as one searcher (``reward_kwargs.num_workers``).

    pool = SearcherPool("bm25", "data/index/lucene", num_workers=4, jvm_heap="2g")
    hits = pool.batch_search(queries, k=1000)   # the same ids and scores one LuceneSearcher gives
    pool.close()

BM25 search runs on one thread per JVM (pyjnius is not thread-safe), so a process can use one core; a pool starts
``num_workers`` processes, each with its own JVM (or FAISS index) opened on the same index folder, cuts the
distinct queries of a call into contiguous chunks of about equal cost (query terms; CHUNKS_PER_WORKER per worker),
hands each chunk to whichever worker is free (two queued in each, so a worker searches the next while the driver
reads the last) and puts the hits back in order. Every worker runs the same searcher code on the same index, so BM25
hits and scores are exactly those of one process (dense scores move by ~1e-7 with how queries are batched, as they
do in one process).

Where the workers run (``backend="auto"``, the default, follows the driver at every call): Ray actors while Ray is
initialized (see :mod:`recr1.retrieval.pool_ray` for their placement), plain subprocesses otherwise
(:mod:`recr1.retrieval.pool_subprocess`). A pool started before ``ray.init`` (the trainer's reward preflight runs
before it) moves its workers to Ray actors at its first call after it.

Faults: a worker that dies during a call is started again and its chunks in flight searched again, once per call;
if that fails too, the call raises :class:`SearcherWorkerError` naming the worker, its process id and the batch
size. A worker that raises (rather than dies) fails the call at once with its traceback. Nothing is ever scored as
a miss because a worker failed. :meth:`SearcherPool.close` stops every process; pools still open at interpreter exit are
closed then, and a worker whose driver was killed exits when its pipe closes. :meth:`SearcherPool.doc_texts` (the
catalog text of a few ids, for the validation tables) asks worker 0, with the same one restart.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Sequence

from recr1.retrieval.base import Hit, Searcher
from recr1.retrieval.pool_protocol import SearcherWorkerError, WorkerDied, WorkerFailed, decode_hits
from recr1.retrieval.query_text import QueryKey

__all__ = ["BACKENDS", "POOLED_KINDS", "SearcherPool", "SearcherWorkerError", "check_num_workers", "split_balanced"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ray", "subprocess")
POOLED_KINDS = ("bm25", "dense")
RESTART_STAT = "searcher_worker_restart"
CHUNKS_PER_WORKER = 8  # small chunks handed to whichever worker is free even out queries of unequal cost
PIPELINE_DEPTH = 2  # chunks queued in a worker: it searches the next while the driver reads the last

_open_pools: weakref.WeakSet[SearcherPool] = weakref.WeakSet()


def check_num_workers(num_workers) -> int:
    """``num_workers`` as an int; raises ValueError unless it is a whole number >= 1."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers={num_workers!r}; expected a whole number of searcher processes >= 1 "
                         f"(1 searches in the calling process)")
    return num_workers


def split_balanced(costs: Sequence[float], parts: int) -> list[tuple[int, int]]:
    """Cut ``costs`` (one per item, in order) into ``parts`` contiguous ``(start, end)`` ranges of about equal total
    cost; some ranges are empty when there are fewer items than parts."""
    total = float(sum(costs))
    bounds, running, item = [0], 0.0, 0
    for part in range(1, parts):
        target = total * part / parts
        while item < len(costs) and running + costs[item] / 2 <= target:  # an item goes where most of it lies
            running += costs[item]
            item += 1
        bounds.append(item)
    bounds.append(len(costs))
    return list(zip(bounds[:-1], bounds[1:]))


def query_cost(query: str, max_terms: int | None) -> int:
    """Relative search cost of a query: its terms (Lucene walks one posting list per term) plus a fixed part."""
    terms = len(query.split())
    return 2 + (min(terms, max_terms) if max_terms else terms)


def _ray_running() -> bool:
    ray = sys.modules.get("ray")  # never import Ray just to learn that it is not running
    return ray is not None and ray.is_initialized()


class SearcherPool(Searcher):
    """``num_workers`` processes each holding a searcher of ``kind`` over ``index``, used as one searcher.

    Args:
        kind: "bm25" or "dense".
        index: the index folder (each worker opens it).
        num_workers: processes to start (>= 1).
        backend: "auto" (Ray actors while Ray is initialized, subprocesses otherwise; re-checked at every call),
            "ray" or "subprocess".
        settings: the searcher's own settings (see :func:`~recr1.retrieval.searcher.load_searcher`); each worker
            gets them all (``jvm_heap`` is per worker: the pool's JVMs take ``num_workers`` times that).

    Raises:
        ValueError: bad num_workers, backend or kind; FileNotFoundError: no index folder; whatever loading the
        searcher raises in a worker (same type, with a note naming the worker).
    """

    def __init__(self, kind: str, index: str | os.PathLike, num_workers: int, backend: str = "auto", **settings):
        super().__init__()
        self.num_workers = check_num_workers(num_workers)
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}; expected one of {list(BACKENDS)}")
        if kind not in POOLED_KINDS:
            raise ValueError(f"num_workers={num_workers} runs {' or '.join(POOLED_KINDS)} searchers in worker "
                             f"processes; retriever kind {kind!r} cannot be pooled")
        if index is None or not os.path.isdir(index):
            raise FileNotFoundError(f"{kind} index folder not found: {index}")
        self.kind = kind
        self.index_dir = os.path.abspath(os.fspath(index))
        self.settings = dict(settings)
        self._backend_choice = backend
        self._workers: list = []
        self._lock = threading.Lock()
        self._closed = False
        self.info: dict = {}
        self._query_key = QueryKey(exact=False)
        self._start_all(self._wanted_backend())
        _open_pools.add(self)

    # ---- what the pool is -----------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """Where the workers run now: "ray" or "subprocess"."""
        return self._workers[0].backend if self._workers else "closed"

    @property
    def worker_pids(self) -> list[int | None]:
        """Process id of each worker, in worker order."""
        return [w.pid for w in self._workers]

    @property
    def num_docs(self) -> int:
        return int(self.info["num_docs"])

    @property
    def ids_in_doc_order(self):
        """The workers' searcher's ``ids_in_doc_order`` (BM25; None for dense)."""
        return self.info.get("ids_in_doc_order")

    def query_key(self, query: str) -> str:
        """See :meth:`Searcher.query_key`: computed here exactly as the workers' searcher does."""
        return self._query_key(query)

    # ---- workers --------------------------------------------------------------------------------

    def _wanted_backend(self) -> str:
        if self._backend_choice != "auto":
            return self._backend_choice
        return "ray" if _ray_running() else "subprocess"

    def _new_worker(self, index: int, backend: str):
        if backend == "ray":
            if not _ray_running():
                raise RuntimeError("backend='ray' needs ray.init() in this process first")
            from recr1.retrieval.pool_ray import RayWorker as worker_cls
        else:
            from recr1.retrieval.pool_subprocess import SubprocessWorker as worker_cls
        return worker_cls(index, self.kind, self.index_dir, self.settings)

    def _start_all(self, backend: str) -> None:
        workers = [self._new_worker(i, backend) for i in range(self.num_workers)]
        try:
            for worker in workers:
                worker.launch()
            for worker in workers:
                self._wait_ready(worker)
        except BaseException:
            for worker in workers:
                worker.close()
            raise
        self._workers = workers
        self.info = workers[0].info
        self._query_key = self.info["query_key"]
        log.info("%s searcher pool: %d %s workers (pids %s) on %s", self.kind, len(workers), backend,
                 self.worker_pids, self.index_dir)

    def _wait_ready(self, worker) -> None:
        try:
            worker.wait_ready()
        except WorkerFailed as failed:
            error = failed.error
            error.add_note(f"(in searcher worker {worker.index}, pid {worker.pid}, loading the {self.kind} index "
                           f"{self.index_dir})")
            raise error from None
        except WorkerDied as died:
            raise SearcherWorkerError(f"{died} while loading the {self.kind} index {self.index_dir}") from died

    def _restart(self, slot: int):
        old = self._workers[slot]
        old.close()
        worker = self._new_worker(slot, old.backend)
        worker.launch()
        try:
            self._wait_ready(worker)
        except BaseException:
            worker.close()
            raise
        self._workers[slot] = worker
        self.stats[RESTART_STAT] += 1
        log.warning("searcher worker %d (pid %s) died; restarted as pid %s", slot, old.pid, worker.pid)
        return worker

    def _follow_ray(self) -> None:
        backend = self._wanted_backend()
        if backend != self.backend:
            log.info("moving the %s searcher pool from %s workers to %s workers", self.kind, self.backend, backend)
            for worker in self._workers:
                worker.close()
            self._workers = []
            self._start_all(backend)

    # ---- search ---------------------------------------------------------------------------------

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """See :meth:`Searcher.batch_search`: distinct queries split over the workers, hits in the input order.

        Raises:
            SearcherWorkerError: a worker died again after its restart, or raised (the message names it).
        """
        k = int(k)
        if k <= 0 or len(queries) == 0:
            return [[] for _ in queries]
        unique = list(dict.fromkeys(queries))
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.kind} searcher pool over {self.index_dir} is closed")
            self._follow_ray()
            max_terms = self._query_key.max_terms if self._query_key.exact else None
            costs = [query_cost(q, max_terms) for q in unique]
            ranges = split_balanced(costs, len(self._workers) * CHUNKS_PER_WORKER)
            hits = self._search_chunks([unique[a:b] for a, b in ranges], k, len(unique))
        by_query = dict(zip(unique, (h for chunk in hits for h in chunk)))
        return [list(by_query[q]) for q in queries]

    def _search_chunks(self, chunks: list[list[str]], k: int, total: int) -> list[list[list[Hit]]]:
        """Hits of every chunk, in chunk order. Chunks go to whichever worker is free (up to PIPELINE_DEPTH queued
        in each, so a worker never waits for the driver to read its last answer); a worker that dies is restarted
        once in the call and its chunks in flight are sent again."""
        results: list = [[] for _ in chunks]
        todo = deque(i for i, chunk in enumerate(chunks) if chunk)
        in_flight: dict[int, deque[int]] = {slot: deque() for slot in range(len(self._workers))}
        first_death: dict[int, tuple[int | None, WorkerDied]] = {}

        def feed(slot: int) -> None:
            try:
                while todo and len(in_flight[slot]) < PIPELINE_DEPTH:
                    chunk_id = todo.popleft()
                    in_flight[slot].append(chunk_id)
                    self._workers[slot].submit(chunks[chunk_id], k)
            except WorkerDied as died:
                recover(slot, died)

        def recover(slot: int, died: WorkerDied) -> None:
            lost = list(in_flight[slot])
            batch = [q for chunk_id in lost for q in chunks[chunk_id]]
            pid = self._workers[slot].pid
            if slot in first_death:
                first_pid, first = first_death[slot]
                raise self._error(slot, batch, k, total, f"died ({first}); restarted as pid {pid}, it died again: "
                                  f"{died}", died, first_pid)  # fmt: skip
            first_death[slot] = (pid, died)
            try:
                self._restart(slot)
            except Exception as exc:
                raise self._error(slot, batch, k, total, f"died ({died}) and could not be restarted: "
                                  f"{type(exc).__name__}: {exc}", exc, pid) from exc  # fmt: skip
            in_flight[slot].clear()
            todo.extendleft(reversed(lost))
            feed(slot)

        try:
            for slot in in_flight:
                feed(slot)
            while any(in_flight.values()):
                busy = [self._workers[slot] for slot, ids in in_flight.items() if ids]
                for worker in type(busy[0]).wait_any(busy):
                    slot = worker.index
                    try:
                        reply = worker.collect()
                    except WorkerDied as died:
                        recover(slot, died)  # its chunks in flight, the one being read included, are sent again
                        continue
                    except WorkerFailed as failed:
                        batch = chunks[in_flight[slot][0]]
                        raise self._error(slot, batch, k, total, f"raised {failed}", failed) from None
                    results[in_flight[slot].popleft()] = self._take(reply)
                    feed(slot)
        except BaseException:
            for worker in self._workers:
                worker.abandon()
            raise
        return results

    def _take(self, reply) -> list[list[Hit]]:
        encoded, stats = reply
        self.stats.update(stats)
        return decode_hits(encoded)

    def _error(self, slot, chunk, k, total, what, cause, pid=None) -> SearcherWorkerError:
        pid = self._workers[slot].pid if pid is None else pid
        message = (f"searcher worker {slot} (pid {pid}) {what}; it was searching a batch of {len(chunk)} of this "
                   f"call's {total} distinct queries (k={k}) on the {self.kind} index {self.index_dir}")
        if isinstance(cause, WorkerFailed) and cause.remote_traceback:
            message += f"\n--- the worker's traceback ---\n{cause.remote_traceback}"
        return SearcherWorkerError(message)

    # ---- catalog text ---------------------------------------------------------------------------

    def doc_texts(self, doc_ids: Sequence[str]) -> list[str | None]:
        """See :meth:`Searcher.doc_texts`: asked of worker 0 (every worker opens the same index; a few ids are one
        short request). A worker that dies is restarted once, as in a search.

        Raises:
            SearcherWorkerError: the worker died again after its restart, or raised (the message names it).
        """
        doc_ids = [str(d) for d in doc_ids]
        if not doc_ids:
            return []
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.kind} searcher pool over {self.index_dir} is closed")
            self._follow_ray()
            slot, first = 0, None
            for _ in range(2):
                worker = self._workers[slot]
                try:
                    worker.submit_docs(doc_ids)
                    texts = worker.collect()
                    break
                except WorkerFailed as failed:
                    worker.abandon()
                    raise self._docs_error(slot, doc_ids, f"raised {failed}", failed) from None
                except WorkerDied as died:
                    worker.abandon()
                    if first is not None:
                        raise self._docs_error(slot, doc_ids, f"died ({first}); restarted as pid {worker.pid}, it "
                                               f"died again: {died}", died) from None  # fmt: skip
                    first = died
                    try:
                        self._restart(slot)
                    except Exception as exc:
                        raise self._docs_error(slot, doc_ids, f"died ({died}) and could not be restarted: "
                                               f"{type(exc).__name__}: {exc}", exc) from exc  # fmt: skip
        if not isinstance(texts, list) or len(texts) != len(doc_ids):
            raise SearcherWorkerError(f"searcher worker {slot} answered {len(doc_ids)} doc ids with {texts!r:.200}")
        return texts

    def _docs_error(self, slot, doc_ids, what, cause) -> SearcherWorkerError:
        message = (f"searcher worker {slot} (pid {self._workers[slot].pid}) {what}; it was reading the text of "
                   f"{len(doc_ids)} doc ids (first: {doc_ids[0]!r:.80}) from the {self.kind} index {self.index_dir}")
        if isinstance(cause, WorkerFailed) and cause.remote_traceback:
            message += f"\n--- the worker's traceback ---\n{cause.remote_traceback}"
        return SearcherWorkerError(message)

    # ---- shutdown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker process (idempotent); the pool cannot search afterwards."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
            for worker in workers:
                worker.close()
        _open_pools.discard(self)


@atexit.register
def _close_open_pools() -> None:
    for pool in list(_open_pools):
        try:
            pool.close()
        except Exception:  # interpreter shutdown: report nothing, stop what can be stopped
            pass
