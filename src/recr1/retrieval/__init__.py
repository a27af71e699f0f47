"""Retrieval for the Rec-R1 reward: Lucene BM25 (via Pyserini's jar) and FAISS dense indexes.

    from recr1.retrieval import get_searcher
    hits = get_searcher("bm25", "data/index/lucene").batch_search(["red wool socks"], k=100)

Build indexes with ``python -m recr1.retrieval.build_lucene`` / ``python -m recr1.retrieval.build_dense``.
Importing this package starts neither the JVM nor torch.
"""
from recr1.retrieval.searcher import RETRIEVER_KINDS, Searcher, clear_searcher_cache, get_searcher, load_searcher

__all__ = ["RETRIEVER_KINDS", "Searcher", "clear_searcher_cache", "get_searcher", "load_searcher"]
