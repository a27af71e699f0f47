"""Load the BM25 (Lucene) or dense (FAISS) searcher for an index, and keep one per process.

    searcher = get_searcher("bm25", "data/index/lucene", k1=1.2, b=0.75)
    hits = searcher.batch_search(["red wool socks", "usb c cable"], k=100)
    hits[0][:2]  # [("P000123", 14.2), ("P004711", 12.9)]
    remote = get_searcher("remote", url="http://cpu-node:8000")  # a recr1.retrieval.serve server's index

``get_searcher`` loads a searcher once per process for each (kind, index path, settings) and hands
the same object back afterwards: the reward calls it hundreds of times per training step. The
``Searcher`` interface itself lives in :mod:`recr1.retrieval.base` (re-exported here).
"""
from __future__ import annotations

import os
import threading

from recr1.retrieval.base import Hit, Searcher
from recr1.retrieval.query_cache import DEFAULT_CACHE_SIZE, CachedSearcher
from recr1.retrieval.searcher_pool import SearcherPool, check_num_workers

__all__ = ["INDEX_KINDS", "RETRIEVER_KINDS", "Hit", "Searcher", "clear_searcher_cache", "get_searcher",
           "load_searcher"]

INDEX_KINDS = ("bm25", "dense")  # searchers that open an index folder in this process
RETRIEVER_KINDS = (*INDEX_KINDS, "remote")


def load_searcher(kind: str, index: str | os.PathLike | None = None, **settings) -> Searcher:
    """A new searcher of ``kind`` ("bm25" or "dense") over the index folder ``index``, or ("remote") a client of
    a retrieval server (``recr1.retrieval.serve``) with ``url=...`` and no index.

    ``settings`` go to :class:`~recr1.retrieval.lucene_searcher.LuceneSearcher` (k1, b,
    query_syntax, max_query_terms, dedup_terms, rec_r1_compat, threads, jvm_heap),
    :class:`~recr1.retrieval.dense_searcher.DenseSearcher` (encoder, pooling, device, threads,
    ef_search, batch_size, max_query_terms) or
    :class:`~recr1.retrieval.remote_searcher.RemoteSearcher` (url, timeout, max_batch, retry_wait).
    """
    if kind not in RETRIEVER_KINDS:
        raise ValueError(f"unknown retriever kind {kind!r}; expected one of {list(RETRIEVER_KINDS)}")
    if kind == "remote":
        if index is not None:
            raise ValueError(f"index={os.fspath(index)!r} with retriever remote: the server searches its own index; "
                             f"give only url=http://host:port")
        if not settings.get("url"):
            raise ValueError("retriever remote needs url=http://host:port of a running python -m recr1.retrieval.serve")
        from recr1.retrieval.remote_searcher import RemoteSearcher

        return RemoteSearcher(**settings)
    if index is None or not os.path.isdir(index):
        raise FileNotFoundError(f"{kind} index folder not found: {index}")
    if kind == "bm25":
        from recr1.retrieval.lucene_searcher import LuceneSearcher

        return LuceneSearcher(index, **settings)
    from recr1.retrieval.dense_searcher import DenseSearcher

    return DenseSearcher(index, **settings)


_cache: dict[tuple, Searcher] = {}
_cache_lock = threading.Lock()


def _cache_key(kind: str, index: str | os.PathLike | None, settings: dict) -> tuple:
    path = None if index is None else os.path.realpath(index)
    return (kind, path, tuple(sorted((k, repr(v)) for k, v in settings.items())))


def get_searcher(kind: str, index: str | os.PathLike | None = None, cache_size: int = DEFAULT_CACHE_SIZE,
                 num_workers: int = 1, **settings) -> Searcher:
    """The process-wide searcher for (kind, index path or server url, settings), loaded on first use.

    ``cache_size`` (entries; 0 turns it off) bounds a cache of (query, k) -> hits kept across calls and
    shared by every caller of this searcher (see :class:`~recr1.retrieval.query_cache.CachedSearcher`).
    ``num_workers`` > 1 searches in that many processes, each with its own searcher over the same index
    (a :class:`~recr1.retrieval.searcher_pool.SearcherPool`, behind the cache); 1 searches in this process.
    """
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ValueError(f"cache_size={cache_size!r}; expected a whole number of entries >= 0 (0 turns the query "
                         f"cache off)")
    check_num_workers(num_workers)
    if kind == "remote" and num_workers > 1:
        raise ValueError(f"num_workers={num_workers} with retriever remote: the server searches (one process there); "
                         f"start more servers or use num_workers with bm25/dense")
    key = _cache_key(kind, index, {**settings, "cache_size": cache_size, "num_workers": num_workers})
    with _cache_lock:
        searcher = _cache.get(key)
        if searcher is None:
            if num_workers > 1:
                searcher = SearcherPool(kind, index, num_workers, **settings)
            else:
                searcher = load_searcher(kind, index, **settings)
            if cache_size:
                searcher = CachedSearcher(searcher, cache_size)
            _cache[key] = searcher
        return searcher


def clear_searcher_cache() -> None:
    """Close and forget every cached searcher (tests, or before re-building an index in place)."""
    with _cache_lock:
        for searcher in _cache.values():
            searcher.close()
        _cache.clear()
