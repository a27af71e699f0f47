import copy
import os

import pyarrow as pa
import pyarrow.parquet as pq

from recr1.data import amazon_c4, check
from recr1.data.item_pool import ITEM_FILE


def _prepared(c4_fixture_dir, out_dir):
    amazon_c4.prepare(os.path.join(c4_fixture_dir, "test.csv"), os.path.join(c4_fixture_dir, ITEM_FILE),
                      str(out_dir), val_size=5)
    return pq.read_table(out_dir / "train.parquet").to_pylist()


def test_prepared_files_pass(c4_fixture_dir, tmp_path, capsys):
    _prepared(c4_fixture_dir, tmp_path)
    paths = [str(tmp_path / f"{s}.parquet") for s in ("train", "val", "test")]
    assert check.main(paths) == 0
    out = capsys.readouterr().out
    assert out.count(": OK,") == 3 and "amazon_c4_val=5" in out


def test_each_contract_violation_is_named_with_its_row(c4_fixture_dir, tmp_path, capsys):
    rows = _prepared(c4_fixture_dir, tmp_path)
    bad = copy.deepcopy(rows[:6])
    bad[0]["reward_model"]["ground_truth"]["target"] = []
    bad[1]["reward_model"]["style"] = "model"
    bad[2]["prompt"] = [{"role": "robot", "content": "hi"}]
    bad[3]["extra_info"]["index"] = bad[4]["extra_info"]["index"]
    bad[5]["extra_info"]["request"] = "something never shown to the model"
    bad[5]["data_source"] = "amazon_c4_val"
    messages, total = check.check_rows(bad)
    text = "\n".join(messages)
    assert "row 0: reward_model.ground_truth.target must be a non-empty list" in text
    assert "row 1: reward_model.style must be 'rule'" in text
    assert "row 2: prompt[0] must be" in text and "row 2: prompt has no user message" in text
    assert "row 2: extra_info.request does not appear in the prompt" in text
    assert "row 4: (split, index) ('train', 4) repeats row 3" in text
    assert "row 5: extra_info.request does not appear in the prompt" in text
    assert "row 5: data_source 'amazon_c4_val' does not match extra_info.split 'train'" in text
    assert total == 8

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(bad), path)
    assert check.main([str(path)]) == 1
    assert "FAILED, 8 problem(s)" in capsys.readouterr().out


def test_missing_columns_and_files_fail(tmp_path, capsys):
    path = tmp_path / "no_prompt.parquet"
    pq.write_table(pa.Table.from_pylist([{"data_source": "x"}]), path)
    assert check.main([str(path), str(tmp_path / "absent.parquet")]) == 1
    out = capsys.readouterr().out
    assert "missing column(s) ['prompt', 'ability', 'reward_model', 'extra_info']" in out
    assert "file not found" in out
