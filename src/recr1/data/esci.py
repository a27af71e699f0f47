"""Prepare the Amazon Shopping Queries dataset (ESCI) for RL training, plus its corpus.

    python -m recr1.data.esci --raw-dir data/esci/raw --out-dir data/esci \\
        [--template sparse|dense] [--val-size 1000] [--seed 42] [--small-version] \\
        [--locale us] [--max-requests N] [--strict]

Reads ``shopping_queries_dataset_examples`` (query_id, query, product_id, esci_label,
product_locale, small_version, split) and ``shopping_queries_dataset_products`` (product_id,
product_title, product_description, product_locale, ...), each as ``.parquet`` (the release
format) or ``.csv``. Keeps one locale (US by default) and the Exact label: a query's target is
the list of its exact products. ESCI's own ``split`` gives ``esci_test``; its train queries are
shuffled with the seed and the last ``--val-size`` become ``esci_val``. Writes ``train.parquet``,
``val.parquet``, ``test.parquet``, ``prep_report.json`` and the corpus (title + description of
every product of the locale) as JSONL shards under ``corpus/``. Line numbers in the bad-input
report are row numbers (1 = first data row) for parquet files and file lines for CSV files.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time

import pandas as pd

from recr1.data.bad_input import BadInputError, BadInputReport, MissingInputError
from recr1.data.corpus import DEFAULT_SHARD_SIZE, write_corpus
from recr1.data.prompts import PROMPT_TEMPLATES
from recr1.data.raw_io import read_csv, require_columns
from recr1.data.records import make_row, write_rows

EXAMPLES_STEM = "shopping_queries_dataset_examples"
PRODUCTS_STEM = "shopping_queries_dataset_products"
EXAMPLE_COLUMNS = ("query_id", "query", "product_id", "esci_label", "product_locale", "split")
PRODUCT_COLUMNS = ("product_id", "product_title", "product_description", "product_locale")
EXACT_LABELS = {"e", "exact"}
DATA_SOURCE_PREFIX = "esci"

_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def find_table(raw_dir: str, stem: str) -> str:
    """Path of ``<stem>.parquet`` or ``<stem>.csv`` in ``raw_dir``; MissingInputError naming both if absent."""
    candidates = [os.path.join(raw_dir, stem + ext) for ext in (".parquet", ".csv")]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise MissingInputError(f"ESCI file not found: none of {candidates}")


def read_table(path: str, required: tuple[str, ...], report: BadInputReport) -> pd.DataFrame:
    """Load a parquet or CSV table as strings, with a ``_line`` column for bad-input reports."""
    if path.endswith(".parquet"):
        df = pd.read_parquet(path)
        require_columns(df.columns, required, path)
        df = df.astype({c: "string" for c in required})
        df["_line"] = range(1, len(df) + 1)
    else:
        rows = [dict(row, _line=line) for line, row in read_csv(path, report, required, non_empty=())]
        df = pd.DataFrame(rows, columns=[*required, "_line"]) if not rows else pd.DataFrame(rows)
    return df


def clean_text(*parts) -> str:
    """Join title/description parts, dropping HTML tags and collapsing whitespace."""
    text = " ".join(str(p) for p in parts if isinstance(p, str) and p)
    return _SPACES.sub(" ", _TAGS.sub(" ", text)).strip()


def load_products(path: str, locale: str, report: BadInputReport) -> pd.DataFrame:
    """Unique products of ``locale`` with columns product_id, text, _line."""
    df = read_table(path, PRODUCT_COLUMNS, report)
    df = df[df["product_locale"].fillna("").str.lower() == locale.lower()]
    empty_id = df["product_id"].fillna("").str.strip() == ""
    for line in df.loc[empty_id, "_line"]:
        report.add("missing_field", path, int(line), "empty product_id")
    df = df[~empty_id]
    dup = df["product_id"].duplicated(keep="first")
    for line, pid in zip(df.loc[dup, "_line"], df.loc[dup, "product_id"]):
        report.add("duplicate_item_id", path, int(line), pid)
    df = df[~dup]
    text = [clean_text(t, d) for t, d in zip(df["product_title"], df["product_description"])]
    df = pd.DataFrame({"product_id": df["product_id"].astype(str).to_numpy(), "text": text,
                       "_line": df["_line"].to_numpy()})
    for line, pid in zip(df.loc[df["text"] == "", "_line"], df.loc[df["text"] == "", "product_id"]):
        report.add("empty_metadata", path, int(line), pid)
    return df


def load_queries(path: str, locale: str, pool: set[str], report: BadInputReport, small_version: bool) -> pd.DataFrame:
    """One row per query with its exact products: query_id, query, split, target (list), in file order."""
    required = EXAMPLE_COLUMNS + (("small_version",) if small_version else ())
    df = read_table(path, required, report)
    keep = df["product_locale"].fillna("").str.lower() == locale.lower()
    keep &= df["esci_label"].fillna("").str.strip().str.lower().isin(EXACT_LABELS)
    if small_version:
        keep &= df["small_version"].astype(str).str.strip().isin({"1", "True", "true"})
    df = df[keep]
    empty = (df["query"].fillna("").str.strip() == "") | (df["product_id"].fillna("").str.strip() == "")
    for line in df.loc[empty, "_line"]:
        report.add("missing_field", path, int(line), "empty query or product_id")
    df = df[~empty]
    known = df["product_id"].isin(pool)
    for line, pid in zip(df.loc[~known, "_line"], df.loc[~known, "product_id"]):
        report.add("target_not_in_pool", path, int(line), pid)
    df = df[known]
    grouped = df.groupby("query_id", sort=False).agg(
        query=("query", "first"), split=("split", "first"), target=("product_id", list), _line=("_line", "first"))
    return grouped.reset_index().sort_values("_line", kind="stable").reset_index(drop=True)


def split_queries(queries: pd.DataFrame, val_size: int, seed: int) -> dict[str, list[dict]]:
    """``{"train", "val", "test"}`` lists of query records; ESCI's test split is kept as is."""
    records = queries.to_dict("records")
    test = [r for r in records if str(r["split"]).strip().lower() == "test"]
    rest = [r for r in records if str(r["split"]).strip().lower() != "test"]
    if rest and val_size >= len(rest):
        raise ValueError(f"--val-size {val_size} leaves no training query: only {len(rest)} train queries; "
                         f"lower --val-size")
    random.Random(seed).shuffle(rest)
    n_train = len(rest) - val_size
    return {"train": rest[:n_train], "val": rest[n_train:], "test": test}


def prepare(raw_dir: str, out_dir: str, template: str = "sparse", val_size: int = 1000, seed: int = 42,
            locale: str = "us", small_version: bool = False, max_requests: int | None = None,
            shard_size: int = DEFAULT_SHARD_SIZE, report: BadInputReport | None = None) -> dict:
    """Run the whole ESCI prep; returns the summary also written to ``out_dir/prep_report.json``."""
    if template not in PROMPT_TEMPLATES:
        raise KeyError(f"unknown --template {template!r}; known: {sorted(PROMPT_TEMPLATES)}")
    report = report if report is not None else BadInputReport()
    examples_path = find_table(raw_dir, EXAMPLES_STEM)
    products_path = find_table(raw_dir, PRODUCTS_STEM)

    products = load_products(products_path, locale, report)
    queries = load_queries(examples_path, locale, set(products["product_id"]), report, small_version)
    if max_requests is not None:
        queries = queries.head(max_requests)
    splits = split_queries(queries, val_size, seed)
    rows = {
        split: [make_row(data_source=f"{DATA_SOURCE_PREFIX}_{split}", request=str(r["query"]).strip(),
                         target=[str(t) for t in r["target"]], split=split, index=i, qid=str(r["query_id"]),
                         category=None, template=template)
                for i, r in enumerate(records)]
        for split, records in splits.items()
    }
    os.makedirs(out_dir, exist_ok=True)
    for split, split_rows in rows.items():
        write_rows(split_rows, os.path.join(out_dir, f"{split}.parquet"))
    shards, n_docs = write_corpus(zip(products["product_id"], products["text"]), os.path.join(out_dir, "corpus"),
                                  shard_size=shard_size, total=len(products), desc="export products")
    summary = {"queries": len(queries), "products": n_docs, "corpus_shards": len(shards),
               "rows": {split: len(r) for split, r in rows.items()}, "locale": locale,
               "small_version": small_version, "bad_input": report.as_dict(), "template": template, "seed": seed}
    with open(os.path.join(out_dir, "prep_report.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.esci",
                                     description="Prepare ESCI parquet files (verl format) and corpus for Rec-R1.")
    parser.add_argument("--raw-dir", required=True, help=f"folder with {EXAMPLES_STEM} and {PRODUCTS_STEM}")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--template", default="sparse", choices=sorted(PROMPT_TEMPLATES))
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--locale", default="us")
    parser.add_argument("--small-version", action="store_true", help="keep only the reduced (Task 1) query set")
    parser.add_argument("--max-requests", type=int, default=None, help="use only the first N queries")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--strict", action="store_true", help="stop at the first bad input row")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.raw_dir):
        print(f"error: --raw-dir not found: {args.raw_dir}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    report = BadInputReport(strict=args.strict)
    try:
        summary = prepare(args.raw_dir, args.out_dir, args.template, args.val_size, args.seed, args.locale,
                          args.small_version, args.max_requests, args.shard_size, report)
    except (MissingInputError, BadInputError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"prepared {summary['queries']} queries and {summary['products']} products in "
          f"{time.perf_counter() - start:.1f} s -> {args.out_dir}: {summary['rows']}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
