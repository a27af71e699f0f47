"""recr1.data.synthetic_reviews: an offline Amazon Reviews 2023 category whose next item follows the user's taste."""
import filecmp
import json
import os

import pandas as pd
import pytest

from recr1.data.amazon_review import prepare
from recr1.data.synthetic_reviews import DEFAULT_CATEGORY, TASTE_FILE, generate_reviews
from recr1.metrics import ndcg_at_k

REVIEW_FIELDS = {"rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp", "helpful_vote",
                 "verified_purchase"}
META_FIELDS = {"main_category", "title", "average_rating", "rating_number", "features", "description", "price",
               "images", "videos", "store", "categories", "details", "parent_asin", "bought_together"}
FILES = (f"{DEFAULT_CATEGORY}.jsonl", f"meta_{DEFAULT_CATEGORY}.jsonl", TASTE_FILE)


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_reviews(str(tmp_path / name), n_users=30, n_items=40, seed=seed)
    for file in FILES:
        assert filecmp.cmp(tmp_path / "a" / file, tmp_path / "b" / file, shallow=False), file
        assert not filecmp.cmp(tmp_path / "a" / file, tmp_path / "c" / file, shallow=False), file


def test_raw_files_use_the_real_field_names_and_users_keep_their_taste(tmp_path):
    summary = generate_reviews(str(tmp_path), n_users=50, n_items=40, seed=1)
    reviews = _read(tmp_path / f"{DEFAULT_CATEGORY}.jsonl")
    metas = _read(tmp_path / f"meta_{DEFAULT_CATEGORY}.jsonl")
    assert all(set(r) == REVIEW_FIELDS for r in reviews) and all(set(m) == META_FIELDS for m in metas)
    assert summary["reviews"] == len(reviews) and summary["items"] == len(metas) > 40
    assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 10**12 for r in reviews)  # milliseconds
    assert len({m["parent_asin"] for m in metas}) == len(metas)
    brand = {m["parent_asin"]: m["store"] for m in metas}
    tastes = {t["user_id"]: t["taste"] for t in _read(tmp_path / TASTE_FILE)}
    follows = [brand[r["parent_asin"]] == tastes[r["user_id"]]["brand"] for r in reviews]
    assert 0.75 < sum(follows) / len(follows) < 0.98  # the brand slot is kept 85% of the time
    assert [r["user_id"] for r in reviews] != sorted(r["user_id"] for r in reviews)  # not grouped by user


def test_errors_name_the_bad_argument(tmp_path):
    with pytest.raises(ValueError, match="--users"):
        generate_reviews(str(tmp_path), n_users=0, n_items=40)
    with pytest.raises(ValueError, match="--items"):
        generate_reviews(str(tmp_path), n_users=5, n_items=3)


def test_bm25_finds_the_next_item_better_with_the_taste_than_with_the_last_title(tmp_path):
    from recr1.retrieval.build_lucene import build_lucene_index
    from recr1.retrieval.searcher import load_searcher

    generate_reviews(str(tmp_path / "raw"), n_users=300, n_items=600, seed=2)
    prepare(str(tmp_path / "raw"), DEFAULT_CATEGORY, str(tmp_path / "out"), inductive_fraction=0.0)
    build_lucene_index(str(tmp_path / "out" / "corpus"), str(tmp_path / "index"), threads=1)
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    tastes = {t["user_id"]: t["query"] for t in _read(tmp_path / "raw" / TASTE_FILE)}
    searcher = load_searcher("bm25", str(tmp_path / "index"))

    def ndcg_at_50(queries):
        hits = searcher.batch_search(queries, 50)
        return sum(ndcg_at_k([d for d, _ in h], list(rm["ground_truth"]["target"]), 50)
                   for h, rm in zip(hits, test["reward_model"])) / len(test)

    last_title = ndcg_at_50([e["history_titles"][-1] for e in test["extra_info"]])
    taste = ndcg_at_50([tastes[e["user_id"]] for e in test["extra_info"]])
    searcher.close()
    assert 0.05 < last_title < taste - 0.1, (last_title, taste)
