"""Per-sample query statistics (recr1.query_stats): length, repetition, truncation, Lucene operators."""
import pytest

from recr1.query_stats import QUERY_OPERATORS, answer_cut_off, query_statistics


def ops(query):
    stats = query_statistics(query)
    return {name for name in QUERY_OPERATORS if stats[f"query_op_{name}"]}


def test_terms_and_repetition():
    stats = query_statistics("red Red shoes  red", '<answer>{"query": "red Red shoes  red"}</answer>')
    assert stats["query_terms"] == 4
    assert stats["query_distinct_ratio"] == pytest.approx(2 / 4)  # case-insensitive: red x3, shoes
    assert stats["query_cut_by_max_terms"] is False and stats["query_cut_by_length"] is False
    assert stats["query_truncated"] is False


def test_no_query_leaves_the_query_stats_out_of_the_averages():
    stats = query_statistics(None, "no answer here")
    assert all(value is None for value in stats.values())
    empty = query_statistics("  ", "<answer>{\"query\": \"  \"}</answer>")
    assert empty["query_terms"] == 0 and empty["query_distinct_ratio"] is None


def test_truncation_by_max_terms_and_by_the_response_length():
    long = query_statistics("a b c d e", max_query_terms=3)
    assert long["query_cut_by_max_terms"] is True and long["query_truncated"] is True
    assert query_statistics("a b c", max_query_terms=3)["query_cut_by_max_terms"] is False
    cut = query_statistics(None, '<think>x</think><answer>{"query": "red sh')
    assert cut["query_cut_by_length"] is True and cut["query_truncated"] is True and cut["query_terms"] is None
    assert answer_cut_off("<think>still thinking") is None
    assert answer_cut_off('<answer>{"query": "a"}</answer>') is False
    assert answer_cut_off('<answer>{"query": "a"}</answer> then <answer>{"query"') is True


@pytest.mark.parametrize("query, expected", [
    ("red shoes", set()),
    ("red AND shoes", {"and"}),
    ("red and shoes", set()),  # Lucene reads operators in upper case only
    ("red && shoes || boots", {"and", "or"}),
    ("shoes NOT red", {"not"}),
    ("shoes !red", {"not"}),
    ("+red shoes -blue", {"plus", "minus"}),
    ("t-shirt size-m", set()),  # a hyphen inside a word is no operator
    ('"red shoes" leather', {"quote"}),
    ("title:red (contents:shoes)", {"field"}),
    ("ratio 3:2 fit", set()),
    ("usb-c: cable", set()),
    ("(+title:red OR -\"blue\")", {"plus", "field", "or", "minus", "quote"}),
])
def test_lucene_operators(query, expected):
    assert ops(query) == expected
