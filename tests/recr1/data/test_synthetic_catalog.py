import csv
import filecmp
import json
import math
import os
import re
from collections import Counter

import numpy as np
import pytest

from recr1.data.item_pool import ITEM_FILE
from recr1.data.splits import DEFAULT_TEST_DOMAINS, domain_matcher, normalize_category
from recr1.data.synthetic import ORACLE_FILE, REQUEST_COLUMNS, REQUEST_FILE, generate_catalog


def _load(raw_dir):
    with open(os.path.join(raw_dir, ITEM_FILE)) as f:
        items = [json.loads(line) for line in f]
    with open(os.path.join(raw_dir, REQUEST_FILE), newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        requests = list(reader)
    with open(os.path.join(raw_dir, ORACLE_FILE)) as f:
        oracles = [json.loads(line) for line in f]
    return header, items, requests, oracles


def _words(text):
    return set(re.findall(r"[a-z]+", text.lower()))


def test_raw_files_have_the_real_amazon_c4_schema(synthetic_raw_dir):
    header, items, requests, _ = _load(synthetic_raw_dir)
    assert header == list(REQUEST_COLUMNS) == ["qid", "query", "item_id", "user_id", "ori_rating", "ori_review"]
    assert all(set(it) == {"item_id", "category", "metadata"} for it in items)
    assert len(items) == 2000 and len(requests) == 400
    assert len({it["item_id"] for it in items}) == 2000
    assert all(re.fullmatch(r"B0[A-Z0-9]{8}", it["item_id"]) for it in items)
    assert all(1 <= int(r["ori_rating"]) <= 5 and r["ori_review"] for r in requests)


def test_catalog_has_the_four_test_domains_among_at_least_six_categories(synthetic_raw_dir):
    _, items, _, _ = _load(synthetic_raw_dir)
    categories = Counter(it["category"] for it in items)
    assert len(categories) >= 6
    lookup = domain_matcher(DEFAULT_TEST_DOMAINS)
    matched = {lookup.get(normalize_category(c)) for c in categories} - {None}
    assert matched == set(DEFAULT_TEST_DOMAINS)


def test_requests_are_long_and_name_the_targets_distinguishing_attributes(synthetic_raw_dir):
    _, items, requests, oracles = _load(synthetic_raw_dir)
    text_of = {it["item_id"]: it["metadata"] for it in items}
    for req, oracle in zip(requests, oracles):
        assert 40 <= len(req["query"].split()) <= 120
        assert oracle["item_id"] == req["item_id"] and str(oracle["qid"]) == req["qid"]
        query_words = oracle["query"].split()
        assert 3 <= len(query_words) <= 5  # the product type plus two to four attributes
        assert set(query_words) <= _words(req["query"])
        assert set(query_words) <= _words(text_of[req["item_id"]])


def test_items_of_one_type_differ_by_their_attributes(synthetic_raw_dir):
    _, items, _, _ = _load(synthetic_raw_dir)
    titles = [it["metadata"].split(". ")[0] for it in items]
    # title: "<Brand> <Feature> <Feature> <Material> <Type>, <Color>, <Size>"
    types = Counter((it["category"], t.split(",")[0].split()[-1]) for it, t in zip(items, titles))
    assert min(types.values()) >= 10  # many items share a type, so the type alone is not enough
    assert len(set(titles)) > 0.99 * len(titles)


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    a, b, c, d = (str(tmp_path / name) for name in "abcd")
    generate_catalog(a, 300, 40, seed=5)
    generate_catalog(b, 300, 40, seed=5)
    generate_catalog(c, 300, 40, seed=6)
    generate_catalog(d, 300, 10, seed=5)
    for name in (ITEM_FILE, REQUEST_FILE, ORACLE_FILE):
        assert filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False)
        assert not filecmp.cmp(os.path.join(a, name), os.path.join(c, name), shallow=False)
    # the item pool does not depend on how many requests are drawn
    assert filecmp.cmp(os.path.join(a, ITEM_FILE), os.path.join(d, ITEM_FILE), shallow=False)


def test_too_few_items_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--items"):
        generate_catalog(str(tmp_path), 3, 5)


def test_bm25_finds_the_target_much_better_with_the_oracle_query_than_with_the_raw_request(synthetic_raw_dir):
    bm25s = pytest.importorskip("bm25s")
    _, items, requests, oracles = _load(synthetic_raw_dir)
    ids = np.array([it["item_id"] for it in items])
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([it["metadata"] for it in items], stopwords="en", show_progress=False),
                    show_progress=False)

    def ndcg_at_100(queries):
        docs, _ = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=100,
                                     show_progress=False)
        gains = []
        for row, req in zip(docs, requests):
            hit = np.nonzero(ids[row] == req["item_id"])[0]
            gains.append(1 / math.log2(hit[0] + 2) if len(hit) else 0.0)
        return float(np.mean(gains))

    raw = ndcg_at_100([r["query"] for r in requests])
    oracle = ndcg_at_100([o["query"] for o in oracles])
    assert raw < 0.75 and oracle > 0.85 and oracle - raw > 0.2, (raw, oracle)
