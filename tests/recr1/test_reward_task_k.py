"""The reward's cut-offs follow the data source: Rec-R1's 5000/50 for amazon_review_*, 1000/100 otherwise."""
from recr1.reward import compute_score_batch, default_ks

GOOD = '<think>t</think><answer>{"query": "red leather shoes"}</answer>'


def test_default_ks_per_task():
    assert default_ks("amazon_review_All_Beauty_train") == (5000, 50)
    assert default_ks("amazon_review_All_Beauty_inductive_test") == (5000, 50)
    assert default_ks("amazon_c4_train") == (1000, 100) and default_ks("esci_val") == (1000, 100)


def test_each_sample_scores_at_its_own_sources_k(bm25_searcher):
    sources = ["amazon_review_Beauty_train", "amazon_review_Beauty_test", "amazon_c4_train", "amazon_c4_val"]
    extra = [{"split": "train"}, {"split": "test"}, {"split": "train"}, {"split": "val"}]
    out = compute_score_batch(sources, [GOOD] * 4, [{"target": ["shoe-red"]}] * 4, extra, searcher=bm25_searcher)
    assert [r["k"] for r in out] == [5000, 50, 1000, 100]
    assert all(r["rank"] == 1 and r["score"] > 1.0 for r in out)
    # explicit reward_kwargs win over the per-task defaults, for every source
    out = compute_score_batch(sources, [GOOD] * 4, [{"target": ["shoe-red"]}] * 4, extra, searcher=bm25_searcher,
                              k_train=7, k_eval=3)
    assert [r["k"] for r in out] == [7, 3, 7, 3]
