import csv
import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from recr1.data import amazon_c4
from recr1.data.check import check_file
from recr1.data.item_pool import ITEM_FILE
from recr1.data.splits import DEFAULT_TEST_DOMAINS

SHORT_NAME = {"Video_Games": "Games", "Baby_Products": "Baby", "Office_Products": "Office",
              "Sports_and_Outdoors": "Sports"}


def _prep(raw_dir, out_dir, **kwargs):
    kwargs.setdefault("val_size", 5)
    summary = amazon_c4.prepare(os.path.join(raw_dir, "test.csv"), os.path.join(raw_dir, ITEM_FILE), str(out_dir),
                                **kwargs)
    frames = {name: pd.read_parquet(os.path.join(out_dir, f"{name}.parquet")) for name in ("train", "val", "test")}
    return summary, frames


def _rows(out_dir, split):
    return pq.read_table(os.path.join(out_dir, f"{split}.parquet")).to_pylist()


def _raw(raw_dir):
    with open(os.path.join(raw_dir, "test.csv"), newline="") as f:
        requests = {r["qid"]: r for r in csv.DictReader(f)}
    with open(os.path.join(raw_dir, ITEM_FILE)) as f:
        category = {it["item_id"]: it["category"] for it in map(json.loads, f)}
    return requests, category


def test_splits_follow_rec_r1_test_domains_and_val_size(c4_fixture_dir, tmp_path):
    summary, frames = _prep(c4_fixture_dir, tmp_path)
    requests, category = _raw(c4_fixture_dir)
    train, val, test = frames["train"], frames["val"], frames["test"]
    held_out = {qid for qid, r in requests.items() if category[r["item_id"]] in SHORT_NAME.values()}
    assert len(train) + len(val[val.data_source == "amazon_c4_val"]) + len(test) == len(requests) == 50
    assert set(test.extra_info.map(lambda e: e["qid"])) == held_out
    assert (val.data_source == "amazon_c4_val").sum() == 5
    assert set(train.data_source) == {"amazon_c4_train"}
    expected = {f"amazon_c4_{d}_test" for d in DEFAULT_TEST_DOMAINS}
    assert set(test.data_source) == expected  # every domain has requests in this fixture
    for source, cat in zip(test.data_source, test.extra_info.map(lambda e: e["category"])):
        assert source == f"amazon_c4_{next(d for d, s in SHORT_NAME.items() if s == cat)}_test"
    # val.parquet = the val split followed by every test domain, with the same rows as test.parquet
    assert list(val.data_source[5:]) == list(test.data_source)
    assert _rows(tmp_path, "val")[5:] == _rows(tmp_path, "test")
    assert summary["rows"] == {"train": len(train), "val": 5, "test": len(test)}


def test_rows_follow_the_contract_with_targets_prompt_and_extra_info(c4_fixture_dir, tmp_path):
    _, frames = _prep(c4_fixture_dir, tmp_path)
    requests, category = _raw(c4_fixture_dir)
    for split, df in frames.items():
        assert check_file(str(tmp_path / f"{split}.parquet"))[1] == 0
    for split, df in (("train", frames["train"]), ("test", frames["test"])):
        assert list(df.extra_info.map(lambda e: e["index"])) == list(range(len(df)))
        for _, row in df.iterrows():
            raw = requests[row.extra_info["qid"]]
            assert row.extra_info["split"] == split
            assert list(row.reward_model["ground_truth"]["target"]) == [raw["item_id"]]
            assert row.reward_model["style"] == "rule"
            assert row.request == row.extra_info["request"] == raw["query"]
            assert row.extra_info["category"] == category[raw["item_id"]]
            assert [m["role"] for m in row.prompt] == ["user"]
            assert raw["query"] in row.prompt[0]["content"]
            assert row.ability == "product_search"


def test_same_seed_gives_identical_files_and_another_seed_another_train_val_split(c4_fixture_dir, tmp_path):
    _, a = _prep(c4_fixture_dir, tmp_path / "a", seed=1)
    _, b = _prep(c4_fixture_dir, tmp_path / "b", seed=1)
    _, c = _prep(c4_fixture_dir, tmp_path / "c", seed=2)
    for name in a:
        assert _rows(tmp_path / "a", name) == _rows(tmp_path / "b", name)
    assert _rows(tmp_path / "a", "test") == _rows(tmp_path / "c", "test")  # held-out domains ignore the seed
    qids = lambda df: list(df.extra_info.map(lambda e: e["qid"]))  # noqa: E731
    assert qids(a["train"]) != qids(c["train"])
    assert sorted(qids(a["train"]) + qids(a["val"])[:5]) == sorted(qids(c["train"]) + qids(c["val"])[:5])


def test_max_requests_takes_the_first_requests_and_dense_template(c4_fixture_dir, tmp_path):
    summary, frames = _prep(c4_fixture_dir, tmp_path, max_requests=20, template="dense", val_size=2)
    requests, _ = _raw(c4_fixture_dir)
    got = {e["qid"] for df in (frames["train"], frames["test"]) for e in df.extra_info}
    got |= {e["qid"] for e in frames["val"].extra_info}
    assert summary["requests"] == 20 and got == set(list(requests)[:20])
    assert all("dense retriever" in p[0]["content"] for p in frames["train"].prompt)


def test_test_domains_can_be_any_category_name(synthetic_raw_dir, tmp_path):
    summary, frames = _prep(synthetic_raw_dir, tmp_path, test_domains=["Pets", "Home_and_Kitchen"], val_size=50)
    assert set(frames["test"].data_source) == {"amazon_c4_Pets_test", "amazon_c4_Home_and_Kitchen_test"}
    assert set(frames["test"].extra_info.map(lambda e: e["category"])) == {"Pets", "Home"}
    assert "Games" in set(frames["train"].extra_info.map(lambda e: e["category"]))
    assert summary["test_domains_without_requests"] == []


def test_a_val_size_that_leaves_no_training_request_is_refused(c4_fixture_dir, tmp_path):
    with pytest.raises(ValueError, match="--val-size 1000 leaves no training request"):
        _prep(c4_fixture_dir, tmp_path, val_size=1000)


def test_cli_runs_as_a_module_and_from_hub_fails_clearly_offline(c4_fixture_dir, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = tmp_path / "out"
    ok = subprocess.run([sys.executable, "-m", "recr1.data.amazon_c4", "--raw-dir", c4_fixture_dir, "--out-dir",
                         str(out), "--val-size", "3", "--max-requests", "30"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "prepared 30 requests" in ok.stdout and "amazon_c4_val: 3" in ok.stdout
    assert json.loads((out / "prep_report.json").read_text())["requests"] == 30
    hub = subprocess.run([sys.executable, "-m", "recr1.data.amazon_c4", "--from-hub", "--out-dir", str(out)],
                         capture_output=True, text=True, env=env)
    assert hub.returncode == 2
    assert "hub not reachable" in hub.stderr and "McAuley-Lab/Amazon-C4" in hub.stderr


def test_category_names_normalize_and_ambiguous_domains_are_refused():
    from recr1.data.splits import domain_matcher, normalize_category

    assert normalize_category(" Sports & Outdoors ") == normalize_category("Sports_and_Outdoors")
    assert domain_matcher(["Video_Games"]) == {"video_games": "Video_Games", "games": "Video_Games"}
    with pytest.raises(ValueError, match="'Games' and 'Video_Games' both match category 'games'"):
        domain_matcher(["Games", "Video_Games"])
