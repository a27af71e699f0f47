"""Build a Pyserini (Anserini) Lucene index of the catalog for BM25.

    python -m recr1.retrieval.build_lucene --corpus data/corpus --index data/index/lucene [--threads 4]

The index is what Pyserini's own ``python -m pyserini.index.lucene --collection JsonCollection
--storePositions --storeDocvectors --storeRaw`` builds (so Pyserini can search it too), plus a
``docids.txt`` that lists the product id of every Lucene doc id for the fast searcher.

With one thread (the default) the rows are indexed in id order, so Lucene's own tie-break (lower
internal doc id first) is Pyserini's (lower product id first) and the searcher never has to
re-sort tied scores. More threads index faster, in an arbitrary order; results are the same, ties
at the cut-off just cost a second, sorted search.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

from recr1.retrieval.corpus import corpus_files, count_corpus, write_sorted_by_id
from recr1.retrieval.java import java_class, start_jvm
from recr1.retrieval.lucene_searcher import DOCIDS_FILE, read_index_docids, write_docids

log = logging.getLogger(__name__)


def _index_collection_args(corpus_dir: str, index_dir: str, threads: int) -> list[str]:
    return [
        "-collection", "JsonCollection",
        "-input", corpus_dir,
        "-index", index_dir,
        "-generator", "DefaultLuceneDocumentGenerator",
        "-threads", str(threads),
        "-storePositions", "-storeDocvectors", "-storeRaw",
    ]  # fmt: skip


def _doc_ids_in_index(reader, expected: list[str] | None, n_checks: int = 2000) -> list[str]:
    """Product id of each Lucene doc id: ``expected`` (the staged order) when a spread sample of
    stored ids confirms it, else read from every stored document (~35 us each)."""
    n = int(reader.maxDoc())
    if expected is not None and len(expected) == n:
        stored = reader.storedFields()
        sample = range(0, n, max(1, n // n_checks))
        if all(stored.document(i).get("id") == expected[i] for i in sample) and stored.document(n - 1).get("id") == expected[-1]:
            return expected
        log.warning("Lucene doc order differs from the staged id order; reading every doc id from the index")
    return read_index_docids(reader)


def build_lucene_index(
    corpus: str | os.PathLike,
    index: str | os.PathLike,
    threads: int = 1,
    overwrite: bool = False,
    jvm_heap: str | None = None,
) -> int:
    """Index ``corpus`` (a folder of JSONL files, or one file) into the folder ``index``.

    Args:
        corpus: JSONL rows ``{"id": ..., "contents": ...}``; every row is checked first.
        index: output folder; must be absent or empty unless ``overwrite``.
        threads: indexing threads (Anserini uses one per input file at most). With 1, rows are
            indexed in id order (see the module docstring); with more, in the corpus' order.
        overwrite: replace an existing index folder.
        jvm_heap: JVM max heap, e.g. "4g".

    Returns:
        Number of documents indexed. Raises ``RuntimeError`` when the index does not hold every row.
    """
    corpus, index = os.path.abspath(corpus), os.path.abspath(index)
    files = corpus_files(corpus)
    t0 = time.time()
    n_rows = count_corpus(corpus)
    print(f"[build_lucene] corpus: {n_rows} rows in {len(files)} file(s) checked in {time.time() - t0:.1f}s")
    if n_rows == 0:
        raise ValueError(f"corpus {corpus} has no rows")
    if os.path.exists(index) and os.listdir(index):
        if not overwrite:
            raise FileExistsError(f"index folder {index} is not empty (pass --overwrite to replace it)")
        shutil.rmtree(index)
    os.makedirs(os.path.dirname(index) or ".", exist_ok=True)

    start_jvm(jvm_heap)
    expected_ids = None
    with tempfile.TemporaryDirectory(prefix="recr1-corpus-") as staging:
        corpus_dir = corpus
        if threads <= 1:
            corpus_dir = staging
            expected_ids = write_sorted_by_id(corpus, os.path.join(staging, "corpus-sorted-by-id.jsonl"))
        elif os.path.isfile(corpus):  # Anserini reads folders only
            corpus_dir = staging
            os.symlink(corpus, os.path.join(staging, os.path.basename(corpus)))
        t0 = time.time()
        java_class("io.anserini.index.IndexCollection").main(_index_collection_args(corpus_dir, index, threads))

    from jnius import JavaException

    try:
        reader = java_class("org.apache.lucene.index.DirectoryReader").open(
            java_class("org.apache.lucene.store.FSDirectory").open(java_class("java.io.File")(index).toPath())
        )
    except JavaException as exc:
        raise RuntimeError(f"Anserini wrote no readable index to {index} (see its log above): {exc}") from exc
    try:
        n_docs = int(reader.numDocs())
        if n_docs != n_rows:
            raise RuntimeError(f"index {index} holds {n_docs} documents but the corpus has {n_rows} rows")
        write_docids(os.path.join(index, DOCIDS_FILE), _doc_ids_in_index(reader, expected_ids))
    finally:
        reader.close()
    print(f"[build_lucene] indexed {n_docs} documents into {index} in {time.time() - t0:.1f}s")
    return n_docs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="folder of JSONL files (or one file) with id/contents rows")
    parser.add_argument("--index", required=True, help="output index folder")
    parser.add_argument("--threads", type=int, default=1,
                        help="indexing threads (default 1: rows indexed in id order, fastest to search)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    parser.add_argument("--jvm-heap", default=None, help="JVM max heap, e.g. 4g (default $RECR1_JVM_HEAP or 2g)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        build_lucene_index(args.corpus, args.index, args.threads, args.overwrite, args.jvm_heap)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        sys.exit(f"build_lucene: {exc}")


if __name__ == "__main__":
    main()
