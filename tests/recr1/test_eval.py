"""The evaluation CLI end to end: the raw-request baseline and a (tiny, untrained) checkpoint."""
import json
import os

import pandas as pd
import pytest

from recr1.data.records import make_row, write_rows
from recr1.eval import main as eval_main
from recr1.eval import evaluate

REQUESTS = [
    ("amazon_c4_Baby_test", "I want red leather running shoes for my morning runs", ["shoe-red"]),
    ("amazon_c4_Baby_test", "looking for a vintage brass compass for hiking", ["tie-m"]),
    ("amazon_c4_Office_test", "a good stainless steel kitchen knife please", ["knife-steel"]),
]


@pytest.fixture(scope="module")
def test_parquet(tmp_path_factory) -> str:
    rows = [
        make_row(data_source=source, request=request, target=target, split="test", index=i, qid=f"q{i}",
                 category=source.split("_")[2])  # fmt: skip
        for i, (source, request, target) in enumerate(REQUESTS)
    ]
    path = str(tmp_path_factory.mktemp("eval_data") / "test.parquet")
    write_rows(rows, path)
    return path


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_raw_request_baseline_with_bm25(test_parquet, lucene_index_dir, tmp_path):
    table = evaluate(test_parquet, lucene_index_dir, "bm25", str(tmp_path))
    assert list(table) == ["amazon_c4_Baby_test", "amazon_c4_Office_test", "all"]
    baby = table["amazon_c4_Baby_test"]
    # shoe-red ranks 1st (NDCG 1); tie-m ranks 2nd of three identical items (NDCG 1/log2(3)).
    assert baby["n"] == 2 and baby["ndcg@10"] == pytest.approx((1 + 1 / 1.5849625007) / 2)
    assert table["amazon_c4_Office_test"]["ndcg@100"] == 1.0 and table["all"]["recall@100"] == 1.0
    assert baby["format_ok"] is None
    records = read_jsonl(tmp_path / "requests.jsonl")
    assert [r["rank"] for r in records] == [1, 2, 1] and records[0]["query"] == REQUESTS[0][1]
    assert records[0]["top10"][0] == "shoe-red" and records[0]["qid"] == "q0"
    markdown = (tmp_path / "metrics.md").read_text()
    assert "| amazon_c4_Office_test | 1 | 1.0000 | 1.0000 | 1.0000 | - |" in markdown
    assert json.loads((tmp_path / "metrics.json").read_text())["table"]["all"]["n"] == 3


def test_dense_baseline(test_parquet, dense_index_dir, tmp_path):
    table = evaluate(test_parquet, dense_index_dir, "dense", str(tmp_path))
    assert table["all"]["n"] == 3 and table["amazon_c4_Office_test"]["ndcg@10"] > 0


def test_checkpoint_generation_is_scored(test_parquet, lucene_index_dir, tiny_model_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    eval_main(["--data", test_parquet, "--index", lucene_index_dir, "--retriever", "bm25", "--model", tiny_model_dir,
               "--out", out, "--max-new-tokens", "12", "--batch-size", "2"])  # fmt: skip
    records = read_jsonl(os.path.join(out, "requests.jsonl"))
    assert len(records) == 3
    for record in records:
        assert isinstance(record["response"], str) and isinstance(record["format_ok"], bool)
        assert 0.0 <= record["ndcg@100"] <= 1.0
    table = json.loads(open(os.path.join(out, "metrics.json")).read())["table"]
    assert 0.0 <= table["all"]["format_ok"] <= 1.0
    assert "| all | 3 |" in capsys.readouterr().out


def test_bad_data_file_is_named(tmp_path, lucene_index_dir):
    path = str(tmp_path / "bad.parquet")
    pd.DataFrame({"data_source": ["x"], "prompt": ["hi"]}).to_parquet(path)
    with pytest.raises(SystemExit, match="missing column.*reward_model"):
        eval_main(["--data", path, "--index", lucene_index_dir, "--retriever", "bm25", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="data file not found"):
        eval_main(["--data", str(tmp_path / "none.parquet"), "--index", lucene_index_dir, "--retriever", "bm25",
                   "--out", str(tmp_path / "o")])  # fmt: skip
