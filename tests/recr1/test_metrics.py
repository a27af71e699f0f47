"""Ranking metrics against hand-computed values and their invariants."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recr1.metrics import first_ranks, hit_rate_at_k, mrr, ndcg_at_k, recall_at_k


def test_single_target_ndcg_is_the_rank_discount():
    ranking = ["a", "b", "c", "d"]
    assert ndcg_at_k(ranking, ["a"], 10) == 1.0
    assert ndcg_at_k(ranking, ["c"], 10) == pytest.approx(1 / math.log2(4))
    assert ndcg_at_k(ranking, ["c"], 2) == 0.0
    assert ndcg_at_k(ranking, ["z"], 10) == 0.0


def test_several_targets():
    # targets at ranks 1 and 3: DCG = 1 + 1/log2(4); IDCG = 1 + 1/log2(3)
    value = ndcg_at_k(["a", "x", "b"], ["a", "b"], 10)
    assert value == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    # IDCG is cut at k: 3 targets, k=1, one found at rank 1 -> 1.0
    assert ndcg_at_k(["a", "b", "c"], ["a", "b", "c"], 1) == 1.0


def test_duplicate_targets_do_not_inflate_idcg():
    assert ndcg_at_k(["a", "b"], ["a", "a", "a"], 10) == 1.0
    assert recall_at_k(["a", "b"], ["a", "a", "c"], 10) == 0.5


def test_a_target_repeated_in_the_ranking_counts_once():
    assert ndcg_at_k(["a", "a", "a"], ["a", "b"], 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert first_ranks(["x", "a", "a"], ["a"]) == {"a": 2}


def test_graded_gains():
    gains = {"a": 3.0, "b": 1.0}
    # ranking b, a: DCG = 1 + 3/log2(3); IDCG = 3 + 1/log2(3)
    assert ndcg_at_k(["b", "a"], ["a", "b"], 10, gains) == pytest.approx((1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))
    assert ndcg_at_k(["a", "b"], ["a", "b"], 10, gains) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "a"], ["a", "c"], 10, {"a": 2.0}) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_recall_hit_rate_mrr():
    ranking = ["x", "a", "y", "b"]
    assert recall_at_k(ranking, ["a", "b", "c"], 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, ["a", "b"], 4) == 1.0
    assert hit_rate_at_k(ranking, ["b"], 3) == 0.0 and hit_rate_at_k(ranking, ["b"], 4) == 1.0
    assert mrr(ranking, ["b", "a"]) == 0.5 and mrr(ranking, ["q"]) == 0.0


@pytest.mark.parametrize("fn", [lambda r, t: ndcg_at_k(r, t, 5), lambda r, t: recall_at_k(r, t, 5),
                                lambda r, t: hit_rate_at_k(r, t, 5), mrr])  # fmt: skip
def test_empty_inputs_give_zero(fn):
    assert fn([], ["a"]) == 0.0
    assert fn(["a"], []) == 0.0
    assert isinstance(fn(["a"], ["a"]), float)


def test_non_positive_k_gives_zero():
    assert ndcg_at_k(["a"], ["a"], 0) == recall_at_k(["a"], ["a"], -1) == hit_rate_at_k(["a"], ["a"], 0) == 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 30), max_size=40),
    st.lists(st.integers(0, 30), max_size=6),
    st.integers(1, 50),
)
def test_bounds_and_monotonicity(ranking, targets, k):
    value = ndcg_at_k(ranking, targets, k)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert 0.0 <= recall_at_k(ranking, targets, k) <= recall_at_k(ranking, targets, k + 5) <= 1.0
    assert (value > 0) == (hit_rate_at_k(ranking, targets, k) == 1.0)
    if targets and ranking[:1] == [targets[0]] and len(set(targets)) == 1:
        assert value == 1.0


def test_retrieval_metrics_equal_the_single_metrics_on_the_top_k():
    """Bit-identical, also from the ranks of a deeper pass (what the reward computes once for NDCG@k_train)."""
    import random

    from recr1.metrics import metrics_from_ranks, ndcg_from_ranks, retrieval_metrics

    rng = random.Random(0)
    for _ in range(300):
        ranked = [rng.randrange(60) for _ in range(rng.randrange(0, 40))]  # repeats and misses included
        targets = [rng.randrange(60) for _ in range(rng.randrange(0, 4))]
        k = rng.choice([0, 1, 5, 10, 20, 100])
        top = ranked[:k]
        expected = {"ndcg@10": ndcg_at_k(top, targets, 10), f"ndcg@{k}": ndcg_at_k(top, targets, k),
                    f"recall@{k}": recall_at_k(top, targets, k), "mrr": mrr(top, targets) if k > 0 else 0.0}
        assert retrieval_metrics(ranked, targets, k) == expected
        unique = list(dict.fromkeys(targets))
        deep = first_ranks(ranked, unique, k + rng.randrange(0, 30))
        if ranked:
            assert metrics_from_ranks(deep, len(unique), k) == expected
        in_k = {doc: rank for doc, rank in deep.items() if rank <= k}
        assert ndcg_from_ranks(in_k, len(unique), k) == ndcg_at_k(top, targets, k)
