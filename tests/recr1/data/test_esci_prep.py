import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from recr1.data import esci
from recr1.data.bad_input import BadInputReport, MissingInputError
from recr1.data.check import check_file

EXAMPLES = "shopping_queries_dataset_examples"
PRODUCTS = "shopping_queries_dataset_products"


def _raw(esci_fixture_dir):
    examples = pd.read_parquet(os.path.join(esci_fixture_dir, EXAMPLES + ".parquet"))
    products = pd.read_parquet(os.path.join(esci_fixture_dir, PRODUCTS + ".parquet"))
    return examples, products


def _frames(out_dir):
    return {s: pd.read_parquet(os.path.join(out_dir, f"{s}.parquet")) for s in ("train", "val", "test")}


def _expected_targets(examples, small_version=False):
    us_exact = examples[(examples.product_locale == "us") & (examples.esci_label == "E")]
    if small_version:
        us_exact = us_exact[us_exact.small_version == 1]
    return {str(q): list(g.product_id) for q, g in us_exact.groupby("query_id", sort=False)}


def test_us_exact_products_become_target_lists_and_esci_test_split_is_kept(esci_fixture_dir, tmp_path):
    examples, _ = _raw(esci_fixture_dir)
    summary = esci.prepare(esci_fixture_dir, str(tmp_path), val_size=3, seed=0)
    frames = _frames(tmp_path)
    expected = _expected_targets(examples)
    rows = pd.concat(frames.values())
    got = {e["qid"]: list(rm["ground_truth"]["target"]) for e, rm in zip(rows.extra_info, rows.reward_model)}
    assert got == expected and len(expected) == 38  # two queries exist only in the es locale
    assert any(len(t) == 2 for t in got.values())
    test_split = set(examples[examples.split == "test"].query_id.astype(str))
    assert {e["qid"] for e in frames["test"].extra_info} == test_split & set(expected)
    assert set(frames["test"].data_source) == {"esci_test"} and set(frames["train"].data_source) == {"esci_train"}
    assert len(frames["val"]) == 3 and set(frames["val"].data_source) == {"esci_val"}
    for df in frames.values():
        assert all(r in p[0]["content"] for r, p in zip(df.request, df.prompt))
    for split in frames:
        assert check_file(str(tmp_path / f"{split}.parquet"))[1] == 0
    assert summary["rows"] == {s: len(f) for s, f in frames.items()}


def test_corpus_holds_each_us_product_once_with_title_and_description(esci_fixture_dir, tmp_path):
    _, products = _raw(esci_fixture_dir)
    esci.prepare(esci_fixture_dir, str(tmp_path), val_size=3)
    with open(tmp_path / "corpus" / "part-00000.jsonl") as f:
        docs = [json.loads(line) for line in f]
    us = products[products.product_locale == "us"]
    assert [d["id"] for d in docs] == list(us.product_id)
    assert docs[0]["contents"] == f"{us.product_title.iloc[0]} {us.product_description.iloc[0]}"
    assert not any(d["contents"].startswith("producto") for d in docs)


def test_small_version_and_csv_input_and_determinism(esci_fixture_dir, tmp_path):
    examples, products = _raw(esci_fixture_dir)
    esci.prepare(esci_fixture_dir, str(tmp_path / "small"), val_size=2, small_version=True)
    small = pd.concat(_frames(tmp_path / "small").values())
    assert {e["qid"] for e in small.extra_info} == set(_expected_targets(examples, small_version=True))

    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    examples.to_csv(csv_dir / (EXAMPLES + ".csv"), index=False)
    products.to_csv(csv_dir / (PRODUCTS + ".csv"), index=False)
    esci.prepare(esci_fixture_dir, str(tmp_path / "a"), val_size=3, seed=4)
    esci.prepare(str(csv_dir), str(tmp_path / "b"), val_size=3, seed=4)
    for split in ("train", "val", "test"):
        a = pq.read_table(tmp_path / "a" / f"{split}.parquet").to_pylist()
        assert a and a == pq.read_table(tmp_path / "b" / f"{split}.parquet").to_pylist()


def test_bad_esci_input_is_reported_and_missing_columns_fail(esci_fixture_dir, tmp_path):
    examples, products = _raw(esci_fixture_dir)
    raw = tmp_path / "raw"
    raw.mkdir()
    extra = examples.iloc[:1].assign(query_id=9999, product_id="B0GONE", esci_label="E", product_locale="us")
    pd.concat([examples, extra]).to_parquet(raw / (EXAMPLES + ".parquet"))
    dup = products.iloc[:1]
    pd.concat([products, dup]).to_parquet(raw / (PRODUCTS + ".parquet"))
    report = BadInputReport()
    esci.prepare(str(raw), str(tmp_path / "out"), val_size=3, report=report)
    assert report.first_lines("target_not_in_pool") == [len(examples) + 1]
    assert report.first_lines("duplicate_item_id") == [len(products) + 1]

    products.drop(columns=["product_title"]).to_parquet(raw / (PRODUCTS + ".parquet"))
    with pytest.raises(MissingInputError, match=r"missing column\(s\) \['product_title'\]"):
        esci.prepare(str(raw), str(tmp_path / "out"), val_size=3)
    os.remove(raw / (PRODUCTS + ".parquet"))
    with pytest.raises(MissingInputError, match="shopping_queries_dataset_products.parquet"):
        esci.prepare(str(raw), str(tmp_path / "out"), val_size=3)
