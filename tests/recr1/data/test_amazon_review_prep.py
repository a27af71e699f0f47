"""recr1.data.amazon_review: Amazon Reviews 2023 raw files -> next-item rows, leave-last-out splits, corpus."""
import gzip
import json
import os

import pandas as pd
import pytest

from recr1.data.amazon_review import main, prepare
from recr1.data.bad_input import BadInputError, BadInputReport, MissingInputError
from recr1.data.check import check_file
from recr1.reward import is_eval_source

CAT = "Toy_Store"
TITLES = {f"P{i}": f"Title of product {i}" for i in range(1, 9)}


def meta_row(asin, title):
    return {"main_category": "Toys", "title": title, "average_rating": 4.2, "rating_number": 3,
            "features": [f"feature of {asin}"], "description": [f"<b>about</b> {asin} &amp; more"], "price": 9.5,
            "images": [], "videos": [], "store": "Acme", "categories": ["Toys"], "details": {},
            "parent_asin": asin, "bought_together": None}


def review(user, asin, ts):
    return {"rating": 5.0, "title": "ok", "text": "fine", "images": [], "asin": asin + "-v", "parent_asin": asin,
            "user_id": user, "timestamp": ts, "helpful_vote": 0, "verified_purchase": True}


def write_raw(folder, reviews, metas=None, gz=False, extra_lines=()):
    os.makedirs(folder, exist_ok=True)
    metas = metas if metas is not None else [meta_row(a, t) for a, t in TITLES.items()]
    with open(os.path.join(folder, f"meta_{CAT}.jsonl"), "w") as f:
        f.writelines(json.dumps(m) + "\n" for m in metas)
    lines = [json.dumps(r) for r in reviews] + list(extra_lines)
    body = "".join(line + "\n" for line in lines).encode()
    path = os.path.join(folder, f"{CAT}.jsonl" + (".gz" if gz else ""))
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(body)
    return str(folder)


# u1 buys P1..P5 (lines out of time order, P3 and P4 at the same ms: file order decides, P2 bought twice);
# u2 buys P6, P7, P8.
REVIEWS = [review("u1", "P2", 200), review("u2", "P6", 10), review("u1", "P1", 100), review("u1", "P4", 300),
           review("u1", "P3", 300), review("u1", "P2", 250), review("u2", "P8", 30), review("u2", "P7", 20),
           review("u1", "P5", 400)]


def rows(path):
    return pd.read_parquet(path).to_dict("records")


def by_source(frame_rows):
    out = {}
    for r in frame_rows:
        out.setdefault(r["data_source"], []).append(r)
    return out


def test_histories_are_time_ordered_and_split_leave_last_out(tmp_path):
    raw = write_raw(tmp_path / "raw", REVIEWS, gz=True)
    summary = prepare(raw, CAT, str(tmp_path / "out"), inductive_fraction=0.0, max_eval_rows=None)
    assert summary["repeat_purchases_dropped"] == 1 and summary["users"] == 2
    train = rows(tmp_path / "out" / "train.parquet")
    # u1's sequence is P1 P2 P4 P3 P5: test P5, val P3, train targets P2 (after P1) and P4 (after P1 P2);
    # u2's P6 P7 P8: test P8, val P7, train nothing (the first item has no history)
    assert [(list(r["extra_info"]["history"]), list(r["reward_model"]["ground_truth"]["target"])) for r in train] \
        == [(["P1"], ["P2"]), (["P1", "P2"], ["P4"])]
    evals = by_source(rows(tmp_path / "out" / "val.parquet"))
    test = {r["extra_info"]["user_id"]: r for r in evals[f"amazon_review_{CAT}_test"]}
    val = {r["extra_info"]["user_id"]: r for r in evals[f"amazon_review_{CAT}_val"]}
    assert list(test["u1"]["extra_info"]["history"]) == ["P1", "P2", "P4", "P3"]
    assert list(test["u1"]["reward_model"]["ground_truth"]["target"]) == ["P5"]
    assert list(val["u1"]["reward_model"]["ground_truth"]["target"]) == ["P3"]
    assert list(test["u2"]["extra_info"]["history"]) == ["P6", "P7"]
    assert list(val["u2"]["extra_info"]["history"]) == ["P6"]
    # the prompt shows the titles, oldest first, Rec-R1's "Item i:" layout
    prompt = test["u1"]["prompt"][0]["content"]
    assert "Item 1: Title of product 1\nItem 2: Title of product 2\nItem 3: Title of product 4\n" \
           "Item 4: Title of product 3" in prompt
    assert list(test["u1"]["extra_info"]["history_titles"])[-1] == "Title of product 3"
    assert test["u1"]["ability"] == "sequential_recommendation" and test["u1"]["extra_info"]["split"] == "test"
    assert is_eval_source(test["u1"]["data_source"], test["u1"]["extra_info"])
    assert not is_eval_source(train[0]["data_source"], train[0]["extra_info"])
    for name in ("train", "val", "test"):
        messages, errors, _ = check_file(str(tmp_path / "out" / f"{name}.parquet"))
        assert errors == 0, messages


def test_min_and_max_history(tmp_path):
    raw = write_raw(tmp_path / "raw", REVIEWS)
    prepare(raw, CAT, str(tmp_path / "a"), min_history=2, max_history=2, inductive_fraction=0.0)
    train = rows(tmp_path / "a" / "train.parquet")
    assert [list(r["reward_model"]["ground_truth"]["target"]) for r in train] == [["P4"]]  # P2 had 1 item before
    evals = rows(tmp_path / "a" / "val.parquet")
    assert all(len(r["extra_info"]["history"]) == 2 for r in evals)  # cut to the last two
    u2 = [r for r in evals if r["extra_info"]["user_id"] == "u2"]
    assert [r["extra_info"]["split"] for r in u2] == ["test"]  # u2's val target has one item before: no row
    with pytest.raises(ValueError, match="min_history"):
        prepare(raw, CAT, str(tmp_path / "b"), min_history=0)


def test_inductive_users_are_held_out_of_training(tmp_path):
    reviews = [review(f"u{u}", f"P{i}", 100 * u + i) for u in range(10) for i in range(1, 7)]
    raw = write_raw(tmp_path / "raw", reviews)
    summary = prepare(raw, CAT, str(tmp_path / "out"), inductive_fraction=0.3, seed=1)
    assert summary["rows"]["inductive_test"] == 3 and summary["rows"]["inductive_val"] == 3
    evals = by_source(rows(tmp_path / "out" / "val.parquet"))
    held_out = {r["extra_info"]["user_id"] for r in evals[f"amazon_review_{CAT}_inductive_test"]}
    train_users = {r["extra_info"]["user_id"] for r in rows(tmp_path / "out" / "train.parquet")}
    assert len(held_out) == 3 and not held_out & train_users and len(train_users) == 7
    test_sources = {r["data_source"] for r in rows(tmp_path / "out" / "test.parquet")}
    assert test_sources == {f"amazon_review_{CAT}_test", f"amazon_review_{CAT}_inductive_test"}
    again = prepare(raw, CAT, str(tmp_path / "again"), inductive_fraction=0.3, seed=1)
    assert again == summary
    same = [pd.read_parquet(tmp_path / d / "val.parquet").to_json() for d in ("again", "out")]
    assert same[0] == same[1]


def test_corpus_holds_title_features_and_description_of_every_item(tmp_path):
    raw = write_raw(tmp_path / "raw", REVIEWS)
    prepare(raw, CAT, str(tmp_path / "out"), inductive_fraction=0.0)
    with open(tmp_path / "out" / "corpus" / "part-00000.jsonl") as f:
        docs = {d["id"]: d["contents"] for d in map(json.loads, f)}
    assert set(docs) == set(TITLES)
    assert docs["P1"] == "Title of product 1 feature of P1 about P1 & more"


def test_bad_rows_are_reported_with_file_and_line_and_nothing_else_is_lost(tmp_path):
    metas = [meta_row(a, t) for a, t in TITLES.items()] + [meta_row("P1", "again"), {"parent_asin": None,
                                                                                     "title": "x"}]
    bad = ['{"user_id": "u1", "parent_asin": "P1", "timestamp": 1',  # cut off
           json.dumps(review("", "P1", 5)), json.dumps(review("u3", "P1", "soon")),
           json.dumps(review("u3", "NOMETA", 5)), json.dumps({"rating": 1, "parent_asin": "P1", "timestamp": 5})]
    raw = write_raw(tmp_path / "raw", REVIEWS, metas=metas, extra_lines=bad)
    summary = prepare(raw, CAT, str(tmp_path / "out"), inductive_fraction=0.0)
    reviews_file, meta_file = os.path.join(raw, f"{CAT}.jsonl"), os.path.join(raw, f"meta_{CAT}.jsonl")
    n = len(REVIEWS)
    assert summary["bad_input"][reviews_file] == {
        "malformed_json": {"count": 1, "first_lines": [n + 1]},
        "missing_field": {"count": 2, "first_lines": [n + 2, n + 5]},
        "bad_timestamp": {"count": 1, "first_lines": [n + 3]},
        "item_without_metadata": {"count": 1, "first_lines": [n + 4]},
    }
    assert summary["bad_input"][meta_file] == {"duplicate_item_id": {"count": 1, "first_lines": [9]},
                                               "missing_field": {"count": 1, "first_lines": [10]}}
    assert summary["reviews"] == n  # every good row is used
    with pytest.raises(BadInputError, match=rf"meta_{CAT}.jsonl, line 9: duplicate item id"):
        prepare(raw, CAT, str(tmp_path / "strict"), report=BadInputReport(strict=True))


def test_missing_files_are_named_and_the_cli_fails_cleanly(tmp_path, capsys):
    with pytest.raises(MissingInputError, match=r"nothing/Toy_Store.jsonl.gz"):
        prepare(str(tmp_path / "nothing"), CAT, str(tmp_path / "out"))
    write_raw(tmp_path / "raw", REVIEWS)
    os.remove(tmp_path / "raw" / f"meta_{CAT}.jsonl")
    assert main(["--raw-dir", str(tmp_path / "raw"), "--category", CAT, "--out-dir", str(tmp_path / "out")]) == 2
    assert f"meta_{CAT}.jsonl" in capsys.readouterr().err


def test_fixture_round_trip(amazon_review_fixture_dir, tmp_path):
    """The committed fixture prepares into valid files; its four appended bad rows are the only ones reported."""
    summary = prepare(amazon_review_fixture_dir, "Synthetic_Store", str(tmp_path / "out"), max_eval_rows=None)
    reviews_file = os.path.join(amazon_review_fixture_dir, "Synthetic_Store.jsonl.gz")
    with gzip.open(reviews_file, "rt") as f:
        n_lines = sum(1 for _ in f)
    assert summary["bad_input"] == {reviews_file: {kind: {"count": 1, "first_lines": [n_lines - 3 + i]} for i, kind in
                                                   enumerate(("malformed_json", "missing_field", "bad_timestamp",
                                                              "item_without_metadata"))}}
    assert summary["reviews"] == n_lines - 4
    assert summary["users"] == 40 and summary["rows"]["test"] + summary["rows"]["inductive_test"] == 40
    for name in ("train", "val", "test"):
        messages, errors, _ = check_file(str(tmp_path / "out" / f"{name}.parquet"))
        assert errors == 0, messages
    with open(tmp_path / "out" / "prep_report.json") as f:
        assert json.load(f) == summary
