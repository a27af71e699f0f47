"""The reward's generation-table hook: query, target rank and the top-3 titles read from the index (Lucene's stored
documents; a dense index keeps no text, so ids only)."""
from recr1.reward import compute_score_batch, describe_generations


def respond(query: str) -> str:
    return f'<think>x</think><answer>{{"query": "{query}"}}</answer>'


def test_titles_come_from_the_lucene_index(bm25_searcher):
    results = compute_score_batch(["amazon_c4_val"] * 2, [respond("steel knife"), "no answer"],
                                  [{"target": ["knife-steel"]}] * 2, searcher=bm25_searcher)
    rows = describe_generations(results + [{"query": "q", "rank": None, "top3_ids": ["not-in-the-catalog"]}],
                                searcher=bm25_searcher)
    assert rows[0]["query"] == "steel knife" and rows[0]["target_rank"] == 1
    assert rows[0]["top3_titles"][0] == "knife-steel: stainless steel kitchen knife set with wooden block"
    assert len(rows[0]["top3_titles"]) == len(results[0]["top3_ids"]) <= 3
    assert rows[1] == {"query": None, "target_rank": None, "top3_titles": []}
    assert rows[2]["top3_titles"] == ["not-in-the-catalog"]


def test_titles_through_reward_kwargs_and_a_dense_index(lucene_index_dir, dense_index_dir):
    [row] = describe_generations([{"query": "q", "rank": 2, "top3_ids": ["tie-a", "shoe-red"]}],
                                 retriever="bm25", index=lucene_index_dir, k_eval=100, format_bonus=0.1)
    assert row["top3_titles"] == ["tie-a: vintage brass compass", "shoe-red: red leather running shoes for men"]
    [dense] = describe_generations([{"query": "q", "rank": 1, "top3_ids": ["tie-a"]}], retriever="dense",
                                   index=dense_index_dir)
    assert dense["top3_titles"] == ["tie-a"]
