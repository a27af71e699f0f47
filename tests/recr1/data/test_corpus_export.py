import json
import os

from recr1.data import corpus
from recr1.data.bad_input import BadInputReport
from recr1.data.item_pool import ITEM_FILE, item_text


def _read(paths):
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs.extend(json.loads(line) for line in f)
    return docs


def test_item_pool_becomes_id_contents_documents_in_shards(c4_fixture_dir, tmp_path):
    items_path = os.path.join(c4_fixture_dir, ITEM_FILE)
    with open(items_path) as f:
        items = [json.loads(line) for line in f]
    paths, n_docs = corpus.export_item_pool(items_path, str(tmp_path), shard_size=64)
    assert n_docs == 200
    assert [os.path.basename(p) for p in paths] == [f"part-{i:05d}.jsonl" for i in range(4)]
    assert [len(_read([p])) for p in paths] == [64, 64, 64, 8]
    docs = _read(paths)
    assert docs == [{"id": it["item_id"], "contents": it["metadata"]} for it in items]


def test_a_new_export_replaces_the_shards_of_the_previous_one(c4_fixture_dir, tmp_path):
    items_path = os.path.join(c4_fixture_dir, ITEM_FILE)
    corpus.export_item_pool(items_path, str(tmp_path), shard_size=10)
    paths, _ = corpus.export_item_pool(items_path, str(tmp_path), shard_size=1000)
    assert sorted(os.listdir(tmp_path)) == ["part-00000.jsonl"] and len(_read(paths)) == 200


def test_dict_metadata_gives_title_and_description_and_bad_items_are_reported(tmp_path):
    items = [
        {"item_id": "B1", "category": "Home", "metadata": {"title": "Red  Mug", "description": ["Holds tea.", "Big."],
                                                         "price": 3}},
        {"item_id": "B2", "category": "Home", "metadata": ""},
        {"item_id": "B1", "category": "Home", "metadata": "again"},
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    report = BadInputReport()
    paths, n_docs = corpus.export_item_pool(str(path), str(tmp_path / "out"), report=report)
    assert _read(paths) == [{"id": "B1", "contents": "Red Mug Holds tea. Big."}, {"id": "B2", "contents": ""}]
    assert report.first_lines("empty_metadata") == [2] and report.first_lines("duplicate_item_id") == [3]
    assert item_text("  Title.\n Description ") == "Title. Description"


def test_cli_reports_throughput_and_missing_input(c4_fixture_dir, tmp_path, capsys):
    assert corpus.main(["--items", os.path.join(c4_fixture_dir, ITEM_FILE), "--out", str(tmp_path)]) == 0
    assert "wrote 200 documents in 1 shard(s)" in capsys.readouterr().out
    assert corpus.main(["--items", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "item pool file (--items) not found" in capsys.readouterr().err
