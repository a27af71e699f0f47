"""BM25 search over a Pyserini/Anserini Lucene index, fast enough to sit inside an RL reward.

It ranks exactly like Pyserini's ``LuceneSearcher`` (same analyzer, same bag-of-words query,
BM25, ties broken by document id), but talks to Lucene's ``IndexSearcher`` directly:

- no stored document is loaded for a hit: hits come back as Lucene doc ids and scores in two bulk
  arrays (:mod:`recr1.retrieval.lucene_hits`) and are mapped to product ids with a table read
  once (``docids.txt`` beside the index, written by ``build_lucene``);
- queries run one after another on the calling thread: pyjnius shares its method objects between
  threads (kivy/pyjnius#287, #563), and a 2-thread pool corrupted JNI arguments in a training run
  ("Invalid instance of TopDocs passed for a BytesRefBuilder" after ~110 steps);
- Pyserini sorts every search by (score, id), which costs two to four times a plain top-k search.
  In an index built by ``build_lucene`` with one thread, Lucene doc ids follow product-id order,
  so Lucene's own tie-break is already Pyserini's and a plain search is exact. In any other index
  a plain search fetches k+1 hits, ties are ordered by id in Python, and only a query whose k-th
  and (k+1)-th scores tie (the cut-off itself then depends on the tie-break) is searched again
  with Pyserini's sort.
"""
from __future__ import annotations

import bisect
import json
import logging
import os
import threading
from collections.abc import Sequence

from recr1.retrieval.java import java_class, start_jvm
from recr1.retrieval.lucene_hits import HitReader
from recr1.retrieval.query_text import DEFAULT_MAX_QUERY_TERMS, QueryKey
from recr1.retrieval.base import Hit, Searcher

log = logging.getLogger(__name__)
# Callers on several Python threads (a user's pool, a web server) take turns: see the module docstring.
_JAVA_CALLS = threading.Lock()

DOCIDS_FILE = "docids.txt"
QUERY_SYNTAXES = ("bow", "lucene")


def read_index_docids(reader, show_progress: bool = True) -> list[str]:
    """Product id of every Lucene doc id, read from the stored ``id`` field (slow: ~35 us per doc)."""
    from tqdm import tqdm

    stored = reader.storedFields()
    n = reader.maxDoc()
    ids = []
    for i in tqdm(range(n), desc="reading doc ids from the index", disable=not show_progress or n < 50_000):
        doc = stored.document(i)
        ids.append(doc.get("id") if doc is not None else None)
    return ids


def write_docids(path: str | os.PathLike, ids: Sequence[str]) -> None:
    """One id per line, line i = Lucene doc id i."""
    for i, doc_id in enumerate(ids):
        if doc_id is None or "\n" in doc_id:
            raise ValueError(f"Lucene doc {i} has no usable 'id' field ({doc_id!r}); cannot write {path}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(ids) + ("\n" if ids else ""))


def _read_docids_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def _stored_text(doc, field: str) -> str | None:
    """The text of a stored Lucene document: its ``field`` if stored, else that key of its ``raw`` JSON."""
    text = doc.get(field)
    if text is not None:
        return str(text)
    raw = doc.get("raw")
    if raw is None:
        return None
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError:
        return str(raw)
    return str(value.get(field)) if isinstance(value, dict) and value.get(field) is not None else None


def order_ties_by_id(hits: list[Hit]) -> list[Hit]:
    """Best score first, equal scores by ascending doc id (Pyserini's order)."""
    return sorted(hits, key=lambda h: (-h[1], h[0]))


class LuceneSearcher(Searcher):
    """BM25 over a Lucene index built by ``recr1.retrieval.build_lucene`` (or any Pyserini index).

    Args:
        index_dir: the Lucene index folder.
        k1, b: BM25 parameters (Pyserini and Rec-R1 use 1.2 and 0.75).
        query_syntax: "bow" (default; analyzed bag of words, what Rec-R1 ran) or "lucene" (classic
            Lucene syntax: AND/OR/NOT, quotes, fields, wildcards; falls back to bag-of-words when the
            text does not parse or the parsed query cannot run).
        max_query_terms: keep only the first N whitespace terms of a query (also capped at Lucene's
            clause limit). None keeps all up to that limit.
        dedup_terms: count each analyzed term once. By default a repeated word weighs more (Lucene's
            bag-of-words boosts a term by its count), which a policy can learn to exploit.
        rec_r1_compat: wrap each query as ``(contents:{q})`` like Rec-R1 did, which loses the first
            word; only for reproducing Rec-R1's numbers.
        threads: accepted for config compatibility; values above 1 are ignored with a warning (Lucene
            search runs on one thread, see the module docstring).
        jvm_heap: JVM max heap, e.g. "2g" (only the first JVM start in a process can set it).
        field: the indexed text field.
    """

    kind = "bm25"

    def __init__(
        self,
        index_dir: str | os.PathLike,
        k1: float = 1.2,
        b: float = 0.75,
        query_syntax: str = "bow",
        max_query_terms: int | None = DEFAULT_MAX_QUERY_TERMS,
        dedup_terms: bool = False,
        rec_r1_compat: bool = False,
        threads: int | None = None,
        jvm_heap: str | None = None,
        field: str = "contents",
    ):
        super().__init__()
        if query_syntax not in QUERY_SYNTAXES:
            raise ValueError(f"query_syntax={query_syntax!r}; expected one of {list(QUERY_SYNTAXES)}")
        if max_query_terms is not None and max_query_terms < 1:
            raise ValueError(f"max_query_terms={max_query_terms}; expected a positive number or None")
        self.index_dir = os.fspath(index_dir)
        if not os.path.isdir(self.index_dir):
            raise FileNotFoundError(f"Lucene index folder not found: {self.index_dir}")
        self.k1, self.b = float(k1), float(b)
        self.query_syntax = query_syntax
        self.dedup_terms = bool(dedup_terms)
        self.rec_r1_compat = bool(rec_r1_compat)
        if threads is not None and int(threads) > 1:
            log.warning("threads=%s ignored: BM25 search runs on one thread (pyjnius is not thread-safe)", threads)
        self.threads = 1
        self.field = field

        start_jvm(jvm_heap)
        from jnius import JavaException

        self._java_error = JavaException
        index_searcher_cls = java_class("org.apache.lucene.search.IndexSearcher")
        directory = java_class("org.apache.lucene.store.FSDirectory").open(
            java_class("java.io.File")(os.path.abspath(self.index_dir)).toPath()
        )
        try:
            self._reader = java_class("org.apache.lucene.index.DirectoryReader").open(directory)
        except JavaException as exc:
            raise FileNotFoundError(f"not a readable Lucene index: {self.index_dir} ({exc})") from exc
        self._searcher = index_searcher_cls(self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self._searcher.setSimilarity(
            java_class("org.apache.lucene.search.similarities.BM25Similarity")(self.k1, self.b)
        )
        clause_limit = int(index_searcher_cls.getMaxClauseCount())
        self.max_query_terms = min(max_query_terms or clause_limit, clause_limit)
        self.query_text = QueryKey(self.max_query_terms, self.rec_r1_compat)

        self._analyzer = java_class("io.anserini.index.IndexCollection").DEFAULT_ANALYZER
        self._bag_of_words = java_class("io.anserini.search.query.BagOfWordsQueryGenerator")()
        self._analyze = java_class("io.anserini.analysis.AnalyzerUtils").analyze
        self._query_parser_cls = java_class("org.apache.lucene.queryparser.classic.QueryParser")
        self._boolean_builder = java_class("org.apache.lucene.search.BooleanQuery$Builder")
        self._boost_query = java_class("org.apache.lucene.search.BoostQuery")
        self._term_query = java_class("org.apache.lucene.search.TermQuery")
        self._term = java_class("org.apache.lucene.index.Term")
        self._should = java_class("org.apache.lucene.search.BooleanClause$Occur").SHOULD
        sort_field = java_class("org.apache.lucene.search.SortField")
        self._score_then_id = java_class("org.apache.lucene.search.Sort")(
            sort_field.FIELD_SCORE, sort_field("id", java_class("org.apache.lucene.search.SortField$Type").STRING_VAL)
        )
        self._hits = HitReader()
        self._doc_ids = self._load_doc_ids()
        self._doc_id_positions: dict[str, int] | None = None  # built on the first doc_texts of an unsorted index
        # Doc ids in product-id order: Lucene's tie-break (lower doc id) equals Pyserini's (lower id).
        self.ids_in_doc_order = all(a < b for a, b in zip(self._doc_ids, self._doc_ids[1:]))

    # ---- index metadata -------------------------------------------------------------------------

    @property
    def num_docs(self) -> int:
        return int(self._reader.numDocs())

    def _load_doc_ids(self) -> list[str]:
        path = os.path.join(self.index_dir, DOCIDS_FILE)
        n = int(self._reader.maxDoc())
        if os.path.isfile(path):
            ids = _read_docids_file(path)
            if len(ids) == n:
                return ids
            log.warning("%s has %d ids but the index has %d docs; reading ids from the index", path, len(ids), n)
        else:
            log.info("no %s in %s; reading %d doc ids from the index once", DOCIDS_FILE, self.index_dir, n)
        return read_index_docids(self._reader)

    def _lucene_doc_id(self, doc_id: str) -> int | None:
        ids = self._doc_ids
        if self.ids_in_doc_order:
            position = bisect.bisect_left(ids, doc_id)
            return position if position < len(ids) and ids[position] == doc_id else None
        if self._doc_id_positions is None:
            self._doc_id_positions = {d: i for i, d in enumerate(ids)}
        return self._doc_id_positions.get(doc_id)

    def doc_texts(self, doc_ids: Sequence[str]) -> list[str | None]:
        """See :meth:`Searcher.doc_texts`: the stored ``contents`` (or the ``contents`` of the stored ``raw`` JSON
        that ``build_lucene`` keeps) of each id; one stored-document read per id: for a few ids, not every hit."""
        positions = [self._lucene_doc_id(str(d)) for d in doc_ids]
        texts: list[str | None] = []
        with _JAVA_CALLS:
            stored = self._reader.storedFields()
            for position in positions:
                doc = stored.document(position) if position is not None else None
                texts.append(_stored_text(doc, self.field) if doc is not None else None)
        return texts

    # ---- queries --------------------------------------------------------------------------------

    def _count(self, event: str) -> None:
        self.stats[event] += 1

    def _bag_of_words_query(self, text: str):
        if not self.dedup_terms:
            return self._bag_of_words.buildQuery(self.field, self._analyzer, text)
        terms = list(dict.fromkeys(self._analyze(self._analyzer, text).toArray()))
        builder = self._boolean_builder()
        for term in terms:
            builder.add(self._boost_query(self._term_query(self._term(self.field, term)), 1.0), self._should)
        return builder.build()

    def _lucene_syntax_query(self, text: str):
        parser = self._query_parser_cls(self.field, self._analyzer)  # not thread-safe: one per query
        return parser.parse(text)

    def query_key(self, query: str) -> str:
        """See :meth:`Searcher.query_key`: the cleaned (and, in Rec-R1 mode, wrapped) text."""
        return self.query_text(query)

    def build_query(self, raw: str):
        """The Lucene ``Query`` for ``raw`` text, or None when nothing searchable is left."""
        text = self.query_text(raw)
        if not text:
            return None
        if self.query_syntax == "lucene":
            try:
                return self._lucene_syntax_query(text)
            except self._java_error:
                self._count("lucene_syntax_fallback")
        return self._bag_of_words_query(text)

    # ---- search ---------------------------------------------------------------------------------

    def _ranked(self, query, k: int) -> list[Hit]:
        ids = self._doc_ids
        if self.ids_in_doc_order:
            docs, scores = self._hits.read(self._searcher.search(query, k))
            return [(ids[d], float(s)) for d, s in zip(docs, scores)]
        top = self._searcher.search(query, k + 1)
        docs, scores = self._hits.read(top)
        if len(docs) > k and scores[k - 1] == scores[k]:
            # The k-th place is tied: which docs make the cut depends on the tie-break itself.
            self._count("tie_at_cutoff_resorted")
            try:
                docs, scores = self._hits.read(self._searcher.search(query, k, self._score_then_id, True))
            except self._java_error:  # an index without id doc values cannot sort by id
                docs, scores = docs[:k], scores[:k]
        else:
            docs, scores = docs[:k], scores[:k]
        return order_ties_by_id([(ids[d], float(s)) for d, s in zip(docs, scores)])

    def _search_one(self, raw: str, k: int) -> list[Hit]:
        try:
            query = self.build_query(raw)
            if query is None:
                return []
            try:
                return self._ranked(query, k)
            except self._java_error:
                if self.query_syntax != "lucene":
                    raise
                # A parsed query that cannot run (e.g. a wildcard expanding past the clause limit).
                self._count("lucene_syntax_fallback")
                return self._ranked(self._bag_of_words_query(self.query_text(raw)), k)
        except self._java_error as exc:
            self._count("search_error")
            log.warning("search failed for query %r: %s", str(raw)[:200], str(exc).splitlines()[0] if str(exc) else exc)
            return []

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """See :meth:`Searcher.batch_search`; each distinct query is searched once."""
        k = int(k)
        if k <= 0 or len(queries) == 0:
            return [[] for _ in queries]
        unique = list(dict.fromkeys(queries))
        with _JAVA_CALLS:
            results = [self._search_one(q, k) for q in unique]
        by_query = dict(zip(unique, results))
        return [list(by_query[q]) for q in queries]

    def close(self) -> None:
        try:
            self._reader.close()
        except Exception:  # already closed
            pass
