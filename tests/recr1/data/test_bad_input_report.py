import json
import os
import shutil

import pandas as pd
import pytest

from recr1.data import amazon_c4
from recr1.data.bad_input import BadInputError, BadInputReport, MissingInputError
from recr1.data.item_pool import ITEM_FILE


@pytest.fixture()
def dirty_raw_dir(c4_fixture_dir, tmp_path):
    """The fixture with one bad row of every kind appended; returns (dir, first bad item id)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    with open(os.path.join(c4_fixture_dir, ITEM_FILE), "rb") as f:
        item_lines = f.read().splitlines(keepends=True)
    first = json.loads(item_lines[0])
    items = item_lines + [
        b'{"item_id": "B0BROKEN", "category": "Games", "metadata": "half a line\n',          # 201 malformed
        b"\n",                                                                                 # 202 blank: ignored
        json.dumps({"item_id": "B0EMPTY001", "category": "Baby", "metadata": ""}).encode() + b"\n",  # 203 empty
        json.dumps(first).encode() + b"\n",                                                    # 204 duplicate
        b'{"item_id": "B0LATIN001", "category": "Office", "metadata": "caf\xe9 desk lamp"}\n',  # 205 non-UTF-8
        b'["not", "an", "object"]\n',                                                          # 206 malformed
    ]
    (raw / ITEM_FILE).write_bytes(b"".join(items))
    with open(os.path.join(c4_fixture_dir, "test.csv"), "rb") as f:
        csv_lines = f.read().splitlines(keepends=True)
    requests = csv_lines + [
        b"900,I want the missing thing please,B0NOTTHERE,AUSER,5,ok\n",                       # 52 not in pool
        b"901,,B0EMPTY001,AUSER,5,ok\n",                                                        # 53 empty query
        b'902,"I need a r\xe9sum\xe9 folder,\nsplit over two lines",B0LATIN001,AUSER,4,ok\n',  # 54-55 non-UTF-8
        b"903,a lamp for the baby room,B0EMPTY001,AUSER,5,ok\n",                               # 56 fine
    ]
    (raw / "test.csv").write_bytes(b"".join(requests))
    return str(raw)


def _prepare(raw_dir, out_dir, strict=False):
    report = BadInputReport(strict=strict)
    summary = amazon_c4.prepare(os.path.join(raw_dir, "test.csv"), os.path.join(raw_dir, ITEM_FILE), str(out_dir),
                                val_size=3, report=report)
    return summary, report


def test_every_kind_of_bad_row_is_counted_with_its_line_numbers(dirty_raw_dir, tmp_path):
    summary, report = _prepare(dirty_raw_dir, tmp_path)
    items_path = os.path.join(dirty_raw_dir, ITEM_FILE)
    requests_path = os.path.join(dirty_raw_dir, "test.csv")
    assert report.first_lines("malformed_json", items_path) == [201, 206]
    assert report.first_lines("empty_metadata", items_path) == [203]
    assert report.first_lines("duplicate_item_id", items_path) == [204]
    assert report.first_lines("non_utf8", items_path) == [205]
    assert report.first_lines("target_not_in_pool", requests_path) == [52]
    assert report.first_lines("missing_field", requests_path) == [53]
    assert report.first_lines("non_utf8", requests_path) == [54]
    assert report.count() == 8
    # kept: the empty-metadata item, the non-UTF-8 item and request (bytes replaced); skipped: the rest
    assert summary["items"] == 200 + 2 and summary["requests"] == 50 + 2
    rows = pd.concat([pd.read_parquet(tmp_path / f"{s}.parquet") for s in ("train", "test")] +
                     [pd.read_parquet(tmp_path / "val.parquet").iloc[:3]])
    by_qid = {e["qid"]: e["request"] for e in rows.extra_info}
    assert by_qid["902"] == "I need a r\ufffdsum\ufffd folder,\nsplit over two lines"
    assert "900" not in by_qid and "901" not in by_qid and "903" in by_qid
    # the same numbers land in the report file and the printed summary
    saved = json.loads((tmp_path / "prep_report.json").read_text())["bad_input"]
    assert saved[items_path]["malformed_json"] == {"count": 2, "first_lines": [201, 206]}
    text = report.summary()
    assert "bad input: 8 row(s)" in text and "[lines 201, 206]" in text and "not in the item pool" in text


def test_strict_stops_at_the_first_bad_row_and_names_it(dirty_raw_dir, tmp_path):
    with pytest.raises(BadInputError, match=r"sampled_item_metadata_1M.jsonl, line 201: malformed JSON"):
        _prepare(dirty_raw_dir, tmp_path, strict=True)


def test_cli_prints_the_report_and_strict_exits_with_an_error(dirty_raw_dir, tmp_path, capsys):
    assert amazon_c4.main(["--raw-dir", dirty_raw_dir, "--out-dir", str(tmp_path), "--val-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "bad input: 8 row(s)" in out and "duplicate item id" in out and "[lines 204]" in out
    assert amazon_c4.main(["--raw-dir", dirty_raw_dir, "--out-dir", str(tmp_path), "--strict"]) == 2
    assert "line 201" in capsys.readouterr().err


def test_a_missing_file_fails_at_once_naming_it(c4_fixture_dir, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(os.path.join(c4_fixture_dir, "test.csv"), raw / "test.csv")
    with pytest.raises(MissingInputError, match=r"item pool file not found: .*sampled_item_metadata_1M.jsonl"):
        _prepare(str(raw), tmp_path / "out")
    assert amazon_c4.main(["--raw-dir", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "out")]) == 2
    assert "nowhere/test.csv" in capsys.readouterr().err


def test_a_missing_column_fails_at_once_naming_it(c4_fixture_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(os.path.join(c4_fixture_dir, ITEM_FILE), raw / ITEM_FILE)
    (raw / "test.csv").write_text("qid,text,item_id\n1,hello,B0X\n")
    with pytest.raises(MissingInputError, match=r"test.csv: missing column\(s\) \['query'\]"):
        _prepare(str(raw), tmp_path / "out")
    (raw / ITEM_FILE).write_text('{"item_id": "B0X", "category": "Games", "meta": "x"}\n')
    with pytest.raises(MissingInputError, match=r"line 1\): missing column\(s\) \['metadata'\]"):
        _prepare(str(raw), tmp_path / "out")


def test_report_keeps_only_the_first_few_lines_and_rejects_unknown_kinds():
    report = BadInputReport(max_examples=2)
    for line in (3, 8, 9, 12):
        report.add("malformed_json", "f.jsonl", line)
    assert report.count("malformed_json") == 4 and report.first_lines("malformed_json") == [3, 8]
    assert "[lines 3, 8, ...]" in report.summary()
    assert BadInputReport().summary() == "bad input: none"
    with pytest.raises(KeyError, match="typo"):
        report.add("typo", "f.jsonl", 1)
