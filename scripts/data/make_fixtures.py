"""Rebuild the small committed fixtures under data/fixtures/ (deterministic).

    .venv/bin/python scripts/data/make_fixtures.py

amazon_c4/: 200 items and 50 requests of the synthetic catalog in the real Amazon-C4 raw format.
esci/: the same 200 items as ESCI products (plus a few of another locale) and 40 short keyword
queries with E/S/C/I labels, in the real ESCI parquet schema.
"""
from __future__ import annotations

import json
import os
import random
import sys

import pandas as pd

from recr1.data.item_pool import ITEM_FILE
from recr1.data.synthetic import ORACLE_FILE, generate_catalog

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


def main() -> int:
    c4_dir = os.path.join(FIXTURES, "amazon_c4")
    generate_catalog(c4_dir, n_items=200, n_requests=50, seed=7)
    with open(os.path.join(c4_dir, ITEM_FILE)) as f:
        items = [json.loads(line) for line in f]
    with open(os.path.join(c4_dir, ORACLE_FILE)) as f:
        oracles = [json.loads(line) for line in f]
    build_esci(items, oracles, os.path.join(FIXTURES, "esci"))
    for dirpath, _, files in os.walk(FIXTURES):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
