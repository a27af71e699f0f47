"""SFT pairs built from prepared rows: same prompts, naive responses, no ground truth anywhere."""
import pandas as pd
import pytest

from recr1.data.amazon_c4 import prepare
from recr1.demo.naive_query import naive_response
from recr1.demo.sft_data import build_sft_file, build_sft_frame, main
from recr1.reward import parse_answer

FIXTURE = "data/fixtures/amazon_c4"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare(f"{FIXTURE}/test.csv", f"{FIXTURE}/sampled_item_metadata_1M.jsonl", str(out), val_size=5)
    return out


def test_sft_file_keeps_prompts_and_answers_naively_without_the_target(prepared, tmp_path):
    out = tmp_path / "sft.parquet"
    n = build_sft_file(str(prepared / "train.parquet"), str(out), n_words=12)
    rows = pd.read_parquet(prepared / "train.parquet")
    sft = pd.read_parquet(out)
    assert n == len(rows) == len(sft) > 0
    assert "reward_model" not in sft.columns
    for (_, row), (_, pair) in zip(rows.iterrows(), sft.iterrows()):
        assert list(pair["prompt"]) == list(row["prompt"])
        assert pair["response"] == naive_response(row["request"], 12)
        assert parse_answer(pair["response"]).format_ok
        for target in row["reward_model"]["ground_truth"]["target"]:
            assert target not in pair["response"]


def test_bad_rows_are_named(prepared):
    rows = pd.read_parquet(prepared / "train.parquet")
    with pytest.raises(ValueError, match="missing column 'request'"):
        build_sft_frame(rows.drop(columns=["request"]), where="x.parquet")
    rows.loc[2, "request"] = "   "
    with pytest.raises(ValueError, match="x.parquet, row 2: empty request"):
        build_sft_frame(rows, where="x.parquet")
    rows.loc[2, "request"] = "I want it, and the one that is for me."
    with pytest.raises(ValueError, match="row 2: the request has no content word"):
        build_sft_frame(rows, where="x.parquet")


def test_cli_reports_a_missing_file(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "nope.parquet" in capsys.readouterr().err
