"""The Rec-R1 reward, case by case, against the real tiny Lucene index."""
import json
import math

import numpy as np
import pytest

from recr1.reward import (
    FORMAT_REASONS,
    compute_score,
    compute_score_batch,
    is_eval_source,
    parse_answer,
    resolve_searcher,
    targets_from_ground_truth,
)
from recr1.retrieval.searcher import Searcher


def respond(query: str, think: str = "the shopper wants this") -> str:
    return f"<think>{think}</think><answer>{json.dumps({'query': query})}</answer>"


GT_RED = {"target": ["shoe-red"]}


# ---- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response, query, format_ok, reason",
    [
        (respond("red shoes"), "red shoes", True, "ok"),
        ('<think>a</think>\n<answer>\n  {"query": "red shoes", "note": 1}\n</answer>\n', "red shoes", True, "ok"),
        ('pre-filled think ends here</think><answer>{"query": "q"}</answer>', "q", True, "ok"),
        ('<think>a</think><answer>{"query": 42}</answer>', "42", True, "ok"),
        ('<think>a</think><answer>{"query": ""}</answer>', "", True, "ok"),
        ("no tags at all", None, False, "no_answer"),
        ("<think>a</think><answer>red shoes</answer>", None, False, "bad_json"),
        ('<think>a</think><answer>{"q": "red"}</answer>', None, False, "no_query"),
        ('<think>a</think><answer>["query"]</answer>', None, False, "no_query"),
        ('<think>a</think><answer>{"query": ["red", "shoes"]}</answer>', None, False, "query_not_text"),
        ('<think>a</think><answer>{"query": null}</answer>', None, False, "query_not_text"),
        ('<answer>{"query": "red"}</answer><think>a</think>', "red", False, "bad_tags"),
        ('<answer>{"query": "no think"}</answer>', "no think", False, "bad_tags"),
        ('<think>a</think><think>b</think><answer>{"query": "x"}</answer>', "x", False, "bad_tags"),
        ('<think>a</think><answer>{"query": "first"}</answer><answer>{"query": "last"}</answer>', "last", False, "bad_tags"),
        ('<think>a</think><answer>{"query": "unclosed"}', None, False, "no_answer"),
        (None, None, False, "not_text"),
    ],
)
def test_parse_answer(response, query, format_ok, reason):
    parsed = parse_answer(response)
    assert (parsed.query, parsed.format_ok, parsed.reason) == (query, format_ok, reason)


def test_prefilled_think_can_be_refused():
    assert not parse_answer('x</think><answer>{"query": "q"}</answer>', accept_prefilled_think=False).format_ok


def test_ground_truth_shapes():
    assert targets_from_ground_truth({"target": np.array(["a", "b"], dtype=object)}) == ["a", "b"]
    assert targets_from_ground_truth({"targets": [1, 2]}) == ["1", "2"]
    assert targets_from_ground_truth("a") == ["a"]
    with pytest.raises(ValueError, match="sample 3"):
        targets_from_ground_truth({"target": []}, "sample 3")
    with pytest.raises(ValueError, match="no 'target' key"):
        targets_from_ground_truth({"label": "a"})


def test_eval_sources():
    assert not is_eval_source("amazon_c4_train")
    assert is_eval_source("amazon_c4_val") and is_eval_source("amazon_c4_Baby_test") and is_eval_source("esci-test")
    assert not is_eval_source("interval_data") and not is_eval_source("latest_items")
    assert is_eval_source("anything", {"split": "test"}) and not is_eval_source("x_test", {"split": "train"})


# ---- scoring ------------------------------------------------------------------------------------


def test_hit_at_rank_one(bm25_searcher):
    [result] = compute_score_batch(["amazon_c4_train"], [respond("red leather shoes")], [GT_RED], searcher=bm25_searcher)
    assert result.pop("query_cache_hit") in (True, False)  # the default searcher caches; earlier tests decide which
    reward = {key: result[key] for key in ("score", "ndcg", "rank", "format_ok", "reason", "query", "k")}
    assert reward == {"score": pytest.approx(1.1), "ndcg": 1.0, "rank": 1, "format_ok": True, "reason": "hit",
                      "query": "red leather shoes", "k": 1000}  # fmt: skip
    assert {key: result[key] for key in ("ndcg@10", "ndcg@100", "recall@100", "mrr")} == {
        "ndcg@10": 1.0, "ndcg@100": 1.0, "recall@100": 1.0, "mrr": 1.0}
    assert result["top3_ids"][0] == "shoe-red" and result["query_terms"] == 3


def test_hit_lower_down_earns_its_discount(bm25_searcher):
    [result] = compute_score_batch(["amazon_c4_train"], [respond("brass compass")], [{"target": ["tie-z"]}],
                                   searcher=bm25_searcher)  # fmt: skip
    assert result["rank"] == 3
    assert result["ndcg"] == pytest.approx(1 / math.log2(4))
    assert result["score"] == pytest.approx(0.1 + 0.5)


def test_k_depends_on_the_split(bm25_searcher):
    # tie-z ranks 3rd: inside k_train=3, outside k_eval=2.
    results = compute_score_batch(
        ["amazon_c4_train", "amazon_c4_val", "amazon_c4_Baby_test"],
        [respond("brass compass")] * 3,
        [{"target": ["tie-z"]}] * 3,
        searcher=bm25_searcher, k_train=3, k_eval=2,
    )  # fmt: skip
    assert [r["k"] for r in results] == [3, 2, 2]
    assert [r["reason"] for r in results] == ["hit", "miss", "miss"]
    assert [r["score"] for r in results] == [pytest.approx(0.6), 0.0, 0.0]
    assert results[1]["rank"] is None


def test_miss_empty_query_and_bad_format(bm25_searcher):
    results = compute_score_batch(
        ["amazon_c4_train"] * 4,
        [respond("organic tea"), respond(""), respond("\x00 \u200b"), "I refuse to answer"],
        [GT_RED] * 4,
        searcher=bm25_searcher,
    )
    assert [(r["score"], r["ndcg"], r["format_ok"], r["reason"]) for r in results] == [
        (0.0, 0.0, True, "miss"), (0.0, 0.0, True, "empty_query"), (0.0, 0.0, True, "empty_query"),
        (-2.0, 0.0, False, "no_answer"),
    ]  # fmt: skip


def test_several_targets_and_constants(bm25_searcher):
    [result] = compute_score_batch(["amazon_c4_train"], [respond("running shoes")],
                                   [{"target": ["shoe-red", "shoe-blue", "shoe-red"]}], searcher=bm25_searcher,
                                   format_bonus=0.5, format_penalty=-1.0)  # fmt: skip
    assert result["ndcg"] == pytest.approx(1.0) and result["score"] == pytest.approx(1.5)
    [bad] = compute_score_batch(["x"], ["<answer>oops</answer>"], [GT_RED], searcher=bm25_searcher, format_penalty=-1.0)
    assert bad["score"] == -1.0


class CountingSearcher(Searcher):
    """The real searcher, recording what it is asked."""

    kind = "bm25"

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def batch_search(self, queries, k):
        self.calls.append((list(queries), k))
        return self.inner.batch_search(queries, k)

    @property
    def num_docs(self):
        return self.inner.num_docs


def test_one_search_over_the_unique_queries_of_a_grpo_group(bm25_searcher):
    spy = CountingSearcher(bm25_searcher)
    responses = [respond("red shoes"), respond("red  shoes"), respond("socks"), "garbage", respond("tea")] * 4
    results = compute_score_batch(["amazon_c4_train"] * 20, responses, [GT_RED] * 20, searcher=spy)
    assert len(spy.calls) == 1
    queries, k = spy.calls[0]
    assert sorted(queries) == ["red shoes", "socks", "tea"] and k == 1000
    assert [r["reason"] for r in results[:5]] == ["hit", "hit", "miss", "no_answer", "miss"]
    assert results[0] == results[5] == results[10]


def test_batch_equals_per_sample(bm25_searcher):
    sources = ["amazon_c4_train", "amazon_c4_val", "amazon_c4_train"]
    responses = [respond("steel knife"), respond("red shoes"), "nothing"]
    truths = [{"target": ["knife-steel"]}, GT_RED, GT_RED]
    batch = compute_score_batch(sources, responses, truths, [{}, None, {}], searcher=bm25_searcher)
    single = [compute_score(s, r, t, searcher=bm25_searcher) for s, r, t in zip(sources, responses, truths)]
    # Whether hits came from the query cache depends on what was searched before, not on the batching.
    for result in batch + single:
        result.pop("query_cache_hit", None)
    assert batch == single


def test_searcher_from_kwargs_or_environment_is_loaded_once(lucene_index_dir, bm25_searcher, monkeypatch):
    assert resolve_searcher("bm25", lucene_index_dir) is bm25_searcher
    monkeypatch.setenv("RECR1_RETRIEVER", "bm25")
    monkeypatch.setenv("RECR1_INDEX", lucene_index_dir)
    assert resolve_searcher() is bm25_searcher
    result = compute_score("amazon_c4_train", respond("red leather shoes"), GT_RED)
    assert result["score"] == pytest.approx(1.1)
    monkeypatch.delenv("RECR1_INDEX")
    with pytest.raises(ValueError, match="RECR1_INDEX"):
        compute_score("amazon_c4_train", respond("red"), GT_RED)


def test_mismatched_batch_lengths_are_named(bm25_searcher):
    with pytest.raises(ValueError, match="2 data_sources, 1 solution_strs"):
        compute_score_batch(["a", "b"], ["x"], [GT_RED], searcher=bm25_searcher)


def test_adversarial_responses_are_all_scored(bm25_searcher, adversarial_queries):
    responses = [f"<think>t</think><answer>{json.dumps({'query': q})}</answer>" for q in adversarial_queries]
    responses += [
        "<think></think><answer>{" * 1000, "<answer>" + "[" * 100_000 + "</answer>", "</think>" * 5,
        "<think>" + "x" * 200_000 + "</think><answer>{\"query\": \"red shoes\"}</answer>",
        '<think>a</think><answer>{"query": "\\ud800"}</answer>', '<think>a</think><answer>{"query": 1e999}</answer>',
        "", "\x00" * 100, "<answer></answer>", '<think>a</think><answer>{"query": "red", "query": {}}</answer>',
    ]  # fmt: skip
    results = compute_score_batch(["amazon_c4_train"] * len(responses), responses, [GT_RED] * len(responses),
                                  searcher=bm25_searcher)  # fmt: skip
    for response, result in zip(responses, results):
        assert isinstance(result["score"], float) and math.isfinite(result["score"]), response[:60]
        assert result["reason"] in FORMAT_REASONS + ("hit", "miss", "empty_query")
        assert (result["score"] == -2.0) == (not result["format_ok"])


def test_query_cache_hit_rate_reaches_the_training_metrics(lucene_index_dir, adversarial_queries):
    from recr1.retrieval.query_cache import CachedSearcher
    from recr1.retrieval.searcher import get_searcher
    from verl.trainer.ppo.metric_utils import compute_reward_extra_metrics

    plain = get_searcher("bm25", lucene_index_dir, cache_size=0)
    cached = CachedSearcher(plain, max_entries=100)
    first = [respond("red leather shoes"), respond("red  leather shoes"), respond("steel knife"), "garbage"]
    step1 = compute_score_batch(["amazon_c4_train"] * 4, first, [GT_RED] * 4, searcher=cached)
    assert [r["query_cache_hit"] for r in step1] == [False, False, False, None]
    second = [respond("red leather shoes"), respond("socks"), respond(""), respond("steel knife")]
    step2 = compute_score_batch(["amazon_c4_train"] * 4, second, [GT_RED] * 4, searcher=cached)
    assert [r["query_cache_hit"] for r in step2] == [True, False, None, True]
    extras = {key: [r[key] for r in step2] for key in step2[0]}
    assert compute_reward_extra_metrics(extras)["reward/query_cache_hit/mean"] == pytest.approx(2 / 3)
    # Cached scores are the uncached ones, adversarial queries included (twice: the second time from the cache).
    responses = [respond(q) for q in adversarial_queries + ["red leather shoes", "brass compass"]]
    args = (["amazon_c4_train"] * len(responses), responses, [GT_RED] * len(responses))
    uncached = compute_score_batch(*args, searcher=plain)
    for _ in range(2):
        scored = compute_score_batch(*args, searcher=cached)
        for result in scored:
            result.pop("query_cache_hit")
        assert scored == uncached


def test_cache_size_comes_from_reward_kwargs(lucene_index_dir):
    off = compute_score_batch(["amazon_c4_train"], [respond("steel knife")], [GT_RED], retriever="bm25",
                              index=lucene_index_dir, cache_size=0)
    assert "query_cache_hit" not in off[0]
    on = compute_score_batch(["amazon_c4_train"] * 2, [respond("steel knife")] * 2, [GT_RED] * 2,
                             retriever="bm25", index=lucene_index_dir, cache_size=7)
    assert resolve_searcher("bm25", lucene_index_dir, cache_size=7).max_entries == 7
    assert [r["query_cache_hit"] for r in on] == [False, False] and on[0]["score"] == off[0]["score"]


# ---- preflight: the index is checked before training starts ----------------------------------------


def _empty_lucene_index(folder) -> str:
    """A valid Lucene index with no documents (what a wrong or truncated corpus leaves behind)."""
    from recr1.retrieval.java import java_class, start_jvm

    start_jvm()
    directory = java_class("org.apache.lucene.store.FSDirectory").open(java_class("java.io.File")(str(folder)).toPath())
    writer = java_class("org.apache.lucene.index.IndexWriter")(directory, java_class("org.apache.lucene.index.IndexWriterConfig")())
    writer.commit()
    writer.close()
    return str(folder)


def test_preflight_passes_on_a_real_index_and_warms_the_reward_searcher(lucene_index_dir, bm25_searcher):
    from recr1.reward import preflight

    # the same kwargs the reward gets: scoring settings are ignored, searcher settings pick the cached searcher
    preflight(retriever="bm25", index=lucene_index_dir, k_train=1000, k_eval=100, format_bonus=0.1)
    assert resolve_searcher("bm25", lucene_index_dir) is bm25_searcher


def test_preflight_names_a_missing_or_unreadable_index(tmp_path, monkeypatch):
    from recr1.reward import preflight

    missing = str(tmp_path / "no_index_here")
    with pytest.raises(FileNotFoundError, match="no_index_here"):
        preflight(retriever="bm25", index=missing)
    (tmp_path / "not_an_index").mkdir()
    with pytest.raises(FileNotFoundError, match="not_an_index"):
        preflight(retriever="bm25", index=str(tmp_path / "not_an_index"))
    with pytest.raises(FileNotFoundError, match="no_index_here"):
        preflight(retriever="dense", index=missing)
    monkeypatch.delenv("RECR1_INDEX", raising=False)
    with pytest.raises(ValueError, match="RECR1_INDEX"):
        preflight(retriever="bm25")


def test_preflight_refuses_an_empty_index_that_would_score_everything_zero(tmp_path):
    from recr1.reward import preflight

    empty = _empty_lucene_index(tmp_path / "empty_index")
    # what the reward alone does with it: a perfect answer silently scores 0 (a miss)
    assert compute_score("amazon_c4_train", respond("red leather shoes"), GT_RED, index=empty)["score"] == 0.0
    with pytest.raises(ValueError, match=r"empty_index.* holds no documents"):
        preflight(retriever="bm25", index=empty)


def test_preflight_names_an_unknown_searcher_setting(lucene_index_dir):
    from recr1.reward import preflight

    with pytest.raises(ValueError, match="k_1"):
        preflight(retriever="bm25", index=lucene_index_dir, k_1=1.2)


def test_verl_trainer_runs_the_preflight_before_any_worker(lucene_index_dir, tmp_path):
    """The Rec-R1 preset through verl's pre-worker check: a good index passes, a missing one stops the run with its
    path (verl finds ``recr1.reward.preflight`` by itself; it never imports recr1)."""
    import pandas as pd

    from verl.trainer.config_check import ConfigError
    from verl.trainer.main_ppo import load_config
    from verl.trainer.ppo.reward_preflight import check_reward_before_workers

    rows = [{"data_source": source, "prompt": [{"role": "user", "content": "red shoes"}],
             "reward_model": {"style": "rule", "ground_truth": {"target": ["shoe-red"]}}}
            for source in ("amazon_c4_train", "amazon_c4_val")]
    for name, row in zip(("train", "val"), rows):
        pd.DataFrame([row]).to_parquet(tmp_path / f"{name}.parquet")
    overrides = [f"data.train_files={tmp_path / 'train.parquet'}", f"data.val_files={tmp_path / 'val.parquet'}"]
    check_reward_before_workers(load_config(overrides + [f"custom_reward_function.reward_kwargs.index={lucene_index_dir}"],
                                            config_name="recr1_grpo"))
    missing = str(tmp_path / "index_never_built")
    with pytest.raises(ConfigError, match="index_never_built"):
        check_reward_before_workers(load_config(overrides + [f"custom_reward_function.reward_kwargs.index={missing}"],
                                                config_name="recr1_grpo"))
