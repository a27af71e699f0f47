"""What crosses the boundary between a :class:`~recr1.retrieval.searcher_pool.SearcherPool` and its workers.

- :class:`SearcherHost` is what runs in each worker process (a subprocess or a Ray actor): one searcher of its own
  (its own JVM, or its own FAISS index) over the shared on-disk index.
- Hits travel as one joined id string, one float64 array of scores and one length per query: a few milliseconds to
  pickle for 250,000 hits, where a list of tuples takes several times longer.
- :class:`QueryKey` lets the driver compute :meth:`Searcher.query_key` without a searcher of its own (the query
  cache in front of the pool calls it for every query).
- :meth:`SearcherHost.doc_texts` answers the catalog text of a few ids (the validation tables' titles) from one
  worker.
- :class:`WorkerDied` (the process is gone) and :class:`WorkerFailed` (it raised) are how a worker handle reports
  trouble; the pool turns them into a restart or a :class:`SearcherWorkerError`.
"""
from __future__ import annotations

import os
import pickle
from collections import Counter
from collections.abc import Sequence

import numpy as np

from recr1.retrieval.base import Hit, Searcher
from recr1.retrieval.query_text import QueryKey

# (ids joined by "\n" or a list of ids when one holds a newline, scores [total] float64, hits per query)
EncodedHits = tuple[str | list[str], np.ndarray, list[int]]


class SearcherWorkerError(RuntimeError):
    """A searcher worker could not answer a batch (it died twice, or raised); the message names the worker."""


class WorkerDied(Exception):
    """The worker process is gone (killed, crashed, or its channel closed)."""


class WorkerFailed(Exception):
    """The worker is alive but raised; ``error`` is its exception, ``remote_traceback`` its traceback text."""

    def __init__(self, error: BaseException, remote_traceback: str = ""):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.remote_traceback = remote_traceback


def encode_hits(results: Sequence[Sequence[Hit]]) -> EncodedHits:
    """Pack n hit lists for transfer (see the module docstring); :func:`decode_hits` reverses it exactly."""
    ids = [doc_id for hits in results for doc_id, _ in hits]
    scores = np.fromiter((score for hits in results for _, score in hits), np.float64, len(ids))
    joined = "\n".join(ids)
    packed_ids: str | list[str] = joined if joined.count("\n") == max(len(ids) - 1, 0) else ids
    return packed_ids, scores, [len(hits) for hits in results]


def decode_hits(encoded: EncodedHits) -> list[list[Hit]]:
    """The n hit lists :func:`encode_hits` packed: same ids, same float scores."""
    packed_ids, scores, lengths = encoded
    total = sum(lengths)
    ids = (packed_ids.split("\n") if total else []) if isinstance(packed_ids, str) else packed_ids
    if len(ids) != total or len(scores) != total:
        raise ValueError(f"corrupt hits from a searcher worker: {len(ids)} ids, {len(scores)} scores, {total} expected")
    score_list = scores.tolist()
    out, start = [], 0
    for n in lengths:
        out.append(list(zip(ids[start : start + n], score_list[start : start + n])))
        start += n
    return out


def query_key_of(searcher: Searcher) -> QueryKey:
    """A picklable :class:`~recr1.retrieval.query_text.QueryKey` computing ``searcher.query_key`` without the
    searcher: the BM25 and dense searchers' own (``query_text``); else the raw text."""
    key = getattr(searcher, "query_text", None)
    return key if isinstance(key, QueryKey) else QueryKey(exact=False)


def open_searcher(kind: str, index: str, settings: dict) -> Searcher:
    """A new BM25 or dense searcher over ``index`` (what :func:`recr1.retrieval.searcher.load_searcher` does for these
    kinds; the factory imports the pool, so the pool does not import the factory)."""
    if kind == "bm25":
        from recr1.retrieval.lucene_searcher import LuceneSearcher

        return LuceneSearcher(index, **settings)
    if kind == "dense":
        from recr1.retrieval.dense_searcher import DenseSearcher

        return DenseSearcher(index, **settings)
    raise ValueError(f"retriever kind {kind!r} cannot run in a searcher worker; expected bm25 or dense")


class SearcherHost:
    """The searcher inside one worker process; every method's result is picklable.

    Loading is a method, not the constructor, so that a bad setting comes back to the driver as the exception
    :func:`~recr1.retrieval.searcher.load_searcher` raised (a Ray actor whose constructor fails only says it died).
    """

    def __init__(self):
        self.searcher: Searcher | None = None
        self._reported: Counter[str] = Counter()

    def load(self, kind: str, index: str, settings: dict) -> dict:
        """Open the searcher; returns what the driver needs to know about it (pid, num_docs, query key...)."""
        self.searcher = open_searcher(kind, index, settings)
        return {"pid": os.getpid(), "kind": self.searcher.kind, "num_docs": self.searcher.num_docs,
                "ids_in_doc_order": getattr(self.searcher, "ids_in_doc_order", None),
                "query_key": query_key_of(self.searcher)}  # fmt: skip

    def search(self, queries: list[str], k: int) -> tuple[EncodedHits, dict[str, int]]:
        """(hits of ``queries`` at ``k`` packed by :func:`encode_hits`, the searcher's stats counted since the last
        call)."""
        if self.searcher is None:
            raise RuntimeError("search before load")
        hits = self.searcher.batch_search(queries, k)
        delta = self.searcher.stats - self._reported
        self._reported = Counter(self.searcher.stats)
        return encode_hits(hits), dict(delta)

    def doc_texts(self, doc_ids: list[str]) -> list[str | None]:
        """The searcher's :meth:`~recr1.retrieval.base.Searcher.doc_texts` of ``doc_ids`` (None for an unknown id)."""
        if self.searcher is None:
            raise RuntimeError("doc_texts before load")
        return self.searcher.doc_texts(doc_ids)

    def close(self) -> None:
        """Close the searcher (idempotent)."""
        if self.searcher is not None:
            self.searcher.close()
            self.searcher = None


def picklable_error(error: BaseException) -> BaseException:
    """``error`` itself when it survives pickling (so the driver re-raises the same type), else a RuntimeError with
    its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
