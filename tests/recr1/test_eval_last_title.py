"""The evaluation CLI's sequential-recommendation baseline: the last history item's title as the query."""
import json

import pytest

from recr1.data.records import make_row, make_seqrec_row, write_rows, write_seqrec_rows
from recr1.eval import evaluate
from recr1.eval import main as eval_main

# (history titles, target): the last title finds the target in the tiny catalog, the whole history does not
HISTORIES = [
    (["cotton socks pack of 3 pairs", "organic green tea bags, 100 count", "stainless steel kitchen knife set"],
     "knife-steel"),
    (["usb c charging cable", "wired studio headphones in black"], "phones-studio"),
]


@pytest.fixture(scope="module")
def seqrec_parquet(tmp_path_factory) -> str:
    rows = [make_seqrec_row(data_source="amazon_review_Toys_test", history=[f"h{j}" for j in range(len(titles))],
                            history_titles=titles, target=target, split="test", index=i, user_id=f"u{i}",
                            category="Toys")
            for i, (titles, target) in enumerate(HISTORIES)]
    path = str(tmp_path_factory.mktemp("seqrec") / "test.parquet")
    write_seqrec_rows(rows, path)
    return path


def test_last_title_baseline_queries_with_the_last_title(seqrec_parquet, lucene_index_dir, tmp_path):
    table = evaluate(seqrec_parquet, lucene_index_dir, "bm25", str(tmp_path / "last"), baseline="last_title")
    assert table["amazon_review_Toys_test"]["ndcg@10"] == 1.0
    with open(tmp_path / "last" / "requests.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["query"] for r in records] == [titles[-1] for titles, _ in HISTORIES]
    assert json.loads((tmp_path / "last" / "metrics.json").read_text())["baseline"] == "last_title"
    assert (tmp_path / "last" / "metrics.md").read_text().startswith("last_title as query")
    # the request baseline queries with the whole history text instead, which ranks the targets lower
    whole = evaluate(seqrec_parquet, lucene_index_dir, "bm25", str(tmp_path / "request"))
    assert whole["amazon_review_Toys_test"]["ndcg@10"] < 1.0


def test_last_title_on_a_product_search_file_names_the_row(lucene_index_dir, tmp_path):
    path = str(tmp_path / "c4.parquet")
    write_rows([make_row(data_source="amazon_c4_val", request="red shoes", target=["shoe-red"], split="val",
                         index=0, qid="q0", category=None)], path)
    with pytest.raises(ValueError, match=r"row 0 \(amazon_c4_val\).*history_titles"):
        evaluate(path, lucene_index_dir, "bm25", str(tmp_path / "out"), baseline="last_title")
    with pytest.raises(SystemExit, match="history_titles"):
        eval_main(["--data", path, "--index", lucene_index_dir, "--retriever", "bm25", "--out", str(tmp_path / "o"),
                   "--baseline", "last_title"])
