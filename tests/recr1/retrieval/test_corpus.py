"""Corpus reading: rows come back in order; a bad row names its file and line."""
import gzip
import json

import pytest

from recr1.retrieval.corpus import CorpusError, count_corpus, iter_corpus, write_sorted_by_id


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_in_file_then_line_order(tmp_path):
    write_lines(tmp_path / "b.jsonl", [json.dumps({"id": "B", "contents": "b"})])
    write_lines(tmp_path / "a.jsonl", [json.dumps({"id": "A", "contents": "a"}), "", json.dumps({"id": 7, "contents": ""})])
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "C", "contents": "c"}) + "\n")
    (tmp_path / "notes.txt").write_text("not a corpus file")
    assert list(iter_corpus(tmp_path)) == [("A", "a"), ("7", ""), ("B", "b"), ("C", "c")]
    assert count_corpus(tmp_path / "a.jsonl") == 2


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"id": "X", "contents": ', "not valid JSON"),
        ('["X", "text"]', "expected a JSON object"),
        ('{"contents": "no id"}', "missing or empty 'id'"),
        ('{"id": "X", "contents": null}', "'contents' must be a string"),
        ('{"id": "A", "contents": "again"}', "duplicate id 'A'"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, bad_line, message):
    path = write_lines(tmp_path / "corpus.jsonl", [json.dumps({"id": "A", "contents": "first"}), bad_line])
    with pytest.raises(CorpusError) as err:
        list(iter_corpus(tmp_path))
    assert f"{path}, line 2" in str(err.value) and message in str(err.value)


def test_folder_without_corpus_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no corpus files"):
        list(iter_corpus(tmp_path))


def test_rows_copied_unchanged_in_id_order(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines_b = ['{"id": "m", "contents": "é  spacing kept"}', '{"contents": "x", "id": "a"}']
    (corpus / "b.jsonl").write_text("\n".join(lines_b))  # no final newline
    with gzip.open(corpus / "a.jsonl.gz", "wt") as f:
        f.write('{"id": "z", "contents": "zz"}\n\n{"id": "b", "contents": "bb"}\n')
    out = tmp_path / "sorted.jsonl"
    assert write_sorted_by_id(corpus, out) == ["a", "b", "m", "z"]
    assert out.read_text().splitlines() == [
        lines_b[1], '{"id": "b", "contents": "bb"}', lines_b[0], '{"id": "z", "contents": "zz"}'
    ]
