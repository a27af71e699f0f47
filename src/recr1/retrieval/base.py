"""The retriever interface every searcher implements (BM25, dense, and wrappers such as the query cache).

It lives apart from :mod:`recr1.retrieval.searcher` (the factory) so that the concrete searchers import
only this module and the factory imports them: no import cycle.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence

Hit = tuple[str, float]


class Searcher(ABC):
    """A retriever over a product catalog.

    Subclasses implement :meth:`batch_search`; it must accept any text (see
    :func:`recr1.retrieval.query_text.clean_query`) and never raise because of a query.
    ``stats`` counts events worth reporting (query fallbacks, queries that failed to run).
    """

    kind: str = ""

    def __init__(self):
        self.stats: Counter[str] = Counter()

    @abstractmethod
    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Rank the catalog for each query.

        Args:
            queries: n query strings (duplicates are searched once).
            k: hits to return per query.

        Returns:
            n lists of up to k ``(doc_id, score)`` pairs, best first; ``[]`` for an empty query.
        """

    def search(self, query: str, k: int) -> list[Hit]:
        """Hits for one query (see :meth:`batch_search`)."""
        return self.batch_search([query], k)[0]

    def query_key(self, query: str) -> str:
        """The text ``query`` is searched as, after this searcher's own preprocessing: queries with the same key
        get the same hits (what :mod:`recr1.retrieval.query_cache` keys its entries on)."""
        return query

    def doc_texts(self, doc_ids: Sequence[str]) -> list[str | None]:
        """The catalog text (title first) of each id, for showing a few results to a person; None for an id this
        searcher holds no text for. The default holds none (a dense index keeps vectors and ids only)."""
        return [None] * len(doc_ids)

    @property
    @abstractmethod
    def num_docs(self) -> int:
        """Number of documents in the index."""

    def close(self) -> None:
        """Release threads and files; the searcher is unusable afterwards."""
