"""Rebuild the small committed fixtures under data/fixtures/ (deterministic).

    .venv/bin/python scripts/data/make_fixtures.py

amazon_c4/: 200 items and 50 requests of the synthetic catalog in the real Amazon-C4 raw format.
esci/: the same 200 items as ESCI products (plus a few of another locale) and 40 short keyword
queries with E/S/C/I labels, in the real ESCI parquet schema.
amazon_review/: 40 users of the synthetic Amazon Reviews 2023 category (reviews gzipped like the release,
meta plain) with four known bad review rows appended (see AMAZON_REVIEW_BAD_LINES).
"""
from __future__ import annotations

import gzip
import json
import os
import random
import sys

import pandas as pd

from recr1.data.item_pool import ITEM_FILE
from recr1.data.synthetic import ORACLE_FILE, generate_catalog
from recr1.data.synthetic_reviews import DEFAULT_CATEGORY, generate_reviews

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(ROOT, "data", "fixtures")


def build_esci(items: list[dict], oracles: list[dict], out_dir: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    products = []
    for it in items:
        title, _, description = it["metadata"].partition(". ")
        products.append({"product_id": it["item_id"], "product_title": title, "product_description": description,
                         "product_bullet_point": None, "product_brand": title.split()[0],
                         "product_color": title.split(", ")[1] if ", " in title else None, "product_locale": "us"})
    for it in items[:5]:  # the same ids in another locale must not leak into the US corpus
        products.append({"product_id": it["item_id"], "product_title": "producto " + it["item_id"],
                         "product_description": "", "product_bullet_point": None, "product_brand": None,
                         "product_color": None, "product_locale": "es"})
    ids = [it["item_id"] for it in items]
    examples = []
    for qid, oracle in enumerate(oracles[:40]):
        exact = [oracle["item_id"]] + ([rng.choice(ids)] if qid % 7 == 0 else [])
        others = rng.sample(ids, 4)
        labels = [(pid, "E") for pid in exact] + list(zip(others, ["S", "C", "I", "I"]))
        split = "test" if qid % 4 == 0 else "train"
        locale = "es" if qid in (5, 6) else "us"
        for pid, label in labels:
            examples.append({"example_id": len(examples), "query": oracle["query"], "query_id": 1000 + qid,
                             "product_id": pid, "product_locale": locale, "esci_label": label,
                             "small_version": int(qid % 3 != 0), "large_version": 1, "split": split})
    os.makedirs(out_dir, exist_ok=True)
    pd.DataFrame(examples).to_parquet(os.path.join(out_dir, "shopping_queries_dataset_examples.parquet"), index=False)
    pd.DataFrame(products).to_parquet(os.path.join(out_dir, "shopping_queries_dataset_products.parquet"), index=False)


# Bad review rows appended to the fixture, one of each kind the prep reports (the kind is the value).
AMAZON_REVIEW_BAD_LINES = (
    ('{"rating": 5.0, "title": "Great", "text": "cut off', "malformed_json"),
    ('{"rating": 4.0, "parent_asin": "B0FIXTURE1", "user_id": "", "timestamp": 1600000000000}', "missing_field"),
    ('{"rating": 4.0, "parent_asin": "B0FIXTURE1", "user_id": "AFIXTURE", "timestamp": "yesterday"}', "bad_timestamp"),
    ('{"rating": 3.0, "parent_asin": "B0NOMETA00", "user_id": "AFIXTURE", "timestamp": 1600000000000}',
     "item_without_metadata"),
)


def build_amazon_review(out_dir: str) -> None:
    generate_reviews(out_dir, n_users=40, n_items=60, seed=7)
    plain = os.path.join(out_dir, f"{DEFAULT_CATEGORY}.jsonl")
    with open(plain, "rb") as f:
        body = f.read() + "".join(line + "\n" for line, _ in AMAZON_REVIEW_BAD_LINES).encode()
    with gzip.GzipFile(plain + ".gz", "wb", mtime=0) as f:  # mtime 0: the same bytes on every rebuild
        f.write(body)
    os.remove(plain)


def main() -> int:
    c4_dir = os.path.join(FIXTURES, "amazon_c4")
    generate_catalog(c4_dir, n_items=200, n_requests=50, seed=7)
    with open(os.path.join(c4_dir, ITEM_FILE)) as f:
        items = [json.loads(line) for line in f]
    with open(os.path.join(c4_dir, ORACLE_FILE)) as f:
        oracles = [json.loads(line) for line in f]
    build_esci(items, oracles, os.path.join(FIXTURES, "esci"))
    build_amazon_review(os.path.join(FIXTURES, "amazon_review"))
    for dirpath, _, files in os.walk(FIXTURES):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
