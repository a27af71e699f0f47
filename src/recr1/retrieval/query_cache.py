"""A bounded cache of ranked hits across training steps, in front of any searcher.

GRPO samples a prompt many times and the same prompts come back every epoch, so the policy writes the
same queries again and again. :class:`CachedSearcher` keys results on (the query as the inner searcher
would actually search it, k), so "red  shoes" and "red shoes" share an entry when the searcher cleans
them alike, and hands back exactly the hits the inner searcher gave. Entries are evicted least recently
used first once ``max_entries`` is reached. Each entry holds the ids (references to the searcher's own
id strings) and the scores as float64: about 16 bytes per hit, ~16 MB per 1000 entries at k=1000.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from recr1.retrieval.base import Hit, Searcher

DEFAULT_CACHE_SIZE = 10_000
HIT_STAT, MISS_STAT = "query_cache_hit", "query_cache_miss"


class CachedSearcher(Searcher):
    """``inner`` with a least-recently-used cache of (query key, k) -> hits, shared by every caller.

    Args:
        inner: the searcher to cache; its ``stats`` counter is shared and gains ``query_cache_hit`` /
            ``query_cache_miss`` (distinct queries answered from the cache / searched).
        max_entries: most (query, k) results kept; must be positive (no cache at all: use ``inner``).

    Empty results are never cached: a query that failed to run is searched again next time.
    Other attributes (``ids_in_doc_order``, ``index_dir``, ...) are the inner searcher's.
    """

    def __init__(self, inner: Searcher, max_entries: int = DEFAULT_CACHE_SIZE):
        super().__init__()
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"cache_size={max_entries!r}; expected a positive whole number of entries (0 turns "
                             f"the query cache off)")
        self.inner = inner
        self.kind = inner.kind
        self.stats = inner.stats
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], tuple[tuple[str, ...], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name):
        # Only reached for names this class lacks; "inner" itself is missing before __init__ sets it.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def size(self) -> int:
        """Entries held now (no ``__len__``: an empty cache must not make the searcher falsy)."""
        return len(self._entries)

    @property
    def num_docs(self) -> int:
        return self.inner.num_docs

    def query_key(self, query: str) -> str:
        return self.inner.query_key(query)

    def doc_texts(self, doc_ids: Sequence[str]) -> list[str | None]:
        return self.inner.doc_texts(doc_ids)

    def contains(self, query: str, k: int) -> bool:
        """Whether (query, k) would be answered from the cache now (changes neither order nor counts)."""
        return (self.inner.query_key(query), int(k)) in self._entries

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """See :meth:`Searcher.batch_search`: the inner searcher's hits, searched only for uncached queries.

        Args:
            queries: n query strings.
            k: hits per query.

        Returns:
            n lists of up to k ``(doc_id, score)`` pairs, the same the inner searcher returns.
        """
        k = int(k)
        keys = [self.inner.query_key(q) for q in queries]
        found: dict[str, list[Hit]] = {}
        with self._lock:
            for key in dict.fromkeys(keys):
                entry = self._entries.get((key, k))
                if entry is not None:
                    self._entries.move_to_end((key, k))
                    found[key] = list(zip(entry[0], entry[1].tolist()))
        # One raw query per uncached key: the key is preprocessed text, and preprocessing twice may differ.
        missing = {key: query for key, query in zip(keys, queries) if key not in found}
        self.stats[HIT_STAT] += len(found)
        self.stats[MISS_STAT] += len(missing)
        if missing:
            for key, hits in zip(missing, self.inner.batch_search(list(missing.values()), k)):
                found[key] = hits
            with self._lock:
                for key in missing:
                    hits = found[key]
                    if hits:
                        ids = tuple(doc_id for doc_id, _ in hits)
                        self._entries[(key, k)] = (ids, np.fromiter((s for _, s in hits), np.float64, len(hits)))
                        self._entries.move_to_end((key, k))
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return [list(found[key]) for key in keys]

    def clear(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        self.clear()
        self.inner.close()
