"""Dense retrieval: encode queries like the index's items, search FAISS by inner product."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from recr1.retrieval.dense_index import load_dense_index
from recr1.retrieval.encoder import TextEncoder
from recr1.retrieval.query_text import DEFAULT_MAX_QUERY_TERMS, QueryKey
from recr1.retrieval.base import Hit, Searcher


class DenseSearcher(Searcher):
    """Searches a dense index built by ``recr1.retrieval.build_dense``.

    Args:
        index_dir: the dense index folder.
        encoder: override the query encoder recorded in ``meta.json`` (must produce the same space).
        pooling: override the recorded pooling.
        device: torch device for the query encoder.
        threads: FAISS OpenMP threads (default: FAISS's own default).
        ef_search: HNSW search breadth; raised to k when k is larger.
        batch_size: queries per encoder pass.
        max_query_terms: keep only the first N whitespace terms of a query.
    """

    kind = "dense"

    def __init__(
        self,
        index_dir: str | os.PathLike,
        encoder: str | None = None,
        pooling: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        ef_search: int = 256,
        batch_size: int = 64,
        max_query_terms: int | None = DEFAULT_MAX_QUERY_TERMS,
    ):
        super().__init__()
        import faiss

        self.index_dir = os.fspath(index_dir)
        self._index, self._doc_ids, self.meta = load_dense_index(self.index_dir)
        if threads:
            faiss.omp_set_num_threads(int(threads))
        self.ef_search = int(ef_search)
        self.max_query_terms = max_query_terms
        self.query_text = QueryKey(max_query_terms)
        self.encoder = TextEncoder(
            encoder or self.meta.get("encoder"),
            pooling=pooling or self.meta.get("pooling", "auto"),
            max_length=self.meta.get("max_length"),
            batch_size=batch_size,
            device=device,
        )
        if self.encoder.dim != self._index.d:
            raise ValueError(
                f"query encoder {self.encoder.name} gives {self.encoder.dim}-d vectors but {self.index_dir} "
                f"holds {self._index.d}-d ones"
            )

    @property
    def num_docs(self) -> int:
        return int(self._index.ntotal)

    def query_key(self, query: str) -> str:
        """See :meth:`Searcher.query_key`: the cleaned text the encoder sees."""
        return self.query_text(query)

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """See :meth:`Searcher.batch_search`; an empty (or all-control-character) query gets no hits."""
        k = min(int(k), self.num_docs)
        cleaned = [self.query_text(q) for q in queries]
        unique = [q for q in dict.fromkeys(cleaned) if q]
        if k <= 0 or not unique:
            return [[] for _ in queries]
        vectors = self.encoder.encode(unique)
        if hasattr(self._index, "hnsw"):
            self._index.hnsw.efSearch = max(self.ef_search, k)
        scores, rows = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        by_query = {}
        for query, row_scores, row_ids in zip(unique, scores, rows):
            by_query[query] = [(self._doc_ids[r], float(s)) for r, s in zip(row_ids, row_scores) if r >= 0]
        return [list(by_query.get(q, [])) for q in cleaned]
