"""A tiny product catalog with known rankings, indexed once per session (Lucene and FAISS).

The JVM and the encoder take seconds to start, so every retrieval, reward and eval test shares
these indexes. Catalog facts the tests rely on:
- "red leather shoes" ranks shoe-red first, shoe-blue second;
- "steel knife" ranks knife-steel first;
- tie-z, tie-a, tie-m (indexed in that order) have identical text ("vintage brass compass"),
  so Pyserini's order for "brass compass" is tie-a, tie-m, tie-z (score ties break by id);
- 20 sock-NN filler items share the word "socks".
"""
from __future__ import annotations

import json
import os

import pytest

TINY_CATALOG = [
    ("shoe-red", "red leather running shoes for men"),
    ("shoe-blue", "blue canvas running shoes for women"),
    ("knife-steel", "stainless steel kitchen knife set with wooden block"),
    ("knife-ceramic", "ceramic kitchen knife with a white blade"),
    ("phones-wireless", "wireless bluetooth headphones with noise cancelling"),
    ("phones-studio", "wired studio headphones in black"),
    ("tea-green", "organic green tea bags, 100 count"),
    ("cable-usbc", "usb c charging cable, 2 meters, braided nylon"),
    ("tie-z", "vintage brass compass"),
    ("tie-a", "vintage brass compass"),
    ("tie-m", "vintage brass compass"),
] + [(f"sock-{i:02d}", f"cotton socks pack of {i + 2} pairs " + "comfortable " * (i % 4)) for i in range(20)]


def write_catalog(folder, rows=TINY_CATALOG, name="catalog.jsonl") -> str:
    """Write ``rows`` of (id, contents) as a JSONL corpus file in ``folder``; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        for doc_id, contents in rows:
            f.write(json.dumps({"id": doc_id, "contents": contents}) + "\n")
    return str(folder)


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory) -> str:
    """Folder with the tiny catalog as one JSONL file."""
    return write_catalog(tmp_path_factory.mktemp("tiny_corpus"))


@pytest.fixture(scope="session")
def lucene_index_dir(tiny_corpus_dir, tmp_path_factory) -> str:
    """Lucene index of the tiny catalog, built with recr1.retrieval.build_lucene."""
    from recr1.retrieval.build_lucene import build_lucene_index

    index = str(tmp_path_factory.mktemp("lucene") / "index")
    build_lucene_index(tiny_corpus_dir, index, threads=1)
    return index


@pytest.fixture(scope="session")
def bm25_searcher(lucene_index_dir):
    """The shared default BM25 searcher over the tiny catalog (from the process-wide cache)."""
    from recr1.retrieval.searcher import get_searcher

    return get_searcher("bm25", lucene_index_dir)


@pytest.fixture(scope="session")
def dense_index_dir(tiny_corpus_dir, tmp_path_factory) -> str:
    """Exact (flat) FAISS index of the tiny catalog with the bundled all-MiniLM-L6-v2."""
    from recr1.retrieval.build_dense import build_dense_index

    index = str(tmp_path_factory.mktemp("dense") / "index")
    build_dense_index(tiny_corpus_dir, index, index_type="flat", batch_size=32)
    return index


# Text an LLM might put in a query: Lucene syntax, huge, binary-ish, empty, multilingual.
ADVERSARIAL_QUERIES = [
    "",
    "   ",
    "\x00\x01\x02\x1f\x7f",
    "red AND shoes OR NOT knife",
    "AND",
    "OR OR OR",
    "NOT",
    '"unterminated phrase',
    '"red shoes"~3',
    "((((unbalanced",
    "unbalanced))))",
    "[a TO }",
    "*",
    "?",
    "*shoes",
    "sh?e*",
    "contents:",
    ":::",
    "title:red",
    "contents:red^100",
    "red~ shoes~0.5",
    "shoe^",
    "^^^",
    "\\",
    "red\\ shoes\\",
    "/regex.*[/",
    "/.*/",
    "a" * 5000,
    "knife " * 3000,
    " ".join(f"word{i}" for i in range(3000)),
    "😀🔥 shoes 🥾",
    "\ud800 lone surrogate \udfff",
    "zero\u200bwidth\u200ejoiners\ufeff",
    "日本語の靴 красные туфли أحذية",
    "line\nbreaks\r\nand\ttabs",
    "{\"query\": \"json in query\"}",
    "<answer>nested</answer>",
    "&& || ! + - ~ ( ) { } [ ] ^ \" ~ * ? : \\ /",
    "null",
    "-shoes",
    "+",
    "knife -",
]


@pytest.fixture(scope="session")
def adversarial_queries() -> list[str]:
    """Queries that must each be searched (or rejected as empty) without an exception."""
    return list(ADVERSARIAL_QUERIES)
