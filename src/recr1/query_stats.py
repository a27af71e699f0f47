"""What the policy's queries look like: length, repetition, truncation, Lucene operators. Pure functions.

The reward returns these per sample (as reward extras) and verl averages them per step
(``reward/query_terms/mean``, ``reward/query_op_and/mean``, ...) and per validation data source. A
policy that learns to repeat words (BM25 rewards term frequency), to write ever longer queries, or to
try Lucene syntax shows up here before it shows up in the reward.
"""
from __future__ import annotations

import re

from recr1.retrieval.query_text import clean_query

# Lucene classic query-parser syntax a query may use (the bag-of-words searcher reads it as plain words;
# query_syntax="lucene" gives it its meaning). Operator words count only in upper case, as Lucene reads them.
QUERY_OPERATORS = {
    "and": re.compile(r"(?:^|\s)(?:AND|&&)(?=\s|$)"),
    "or": re.compile(r"(?:^|\s)(?:OR|\|\|)(?=\s|$)"),
    "not": re.compile(r"(?:^|\s)(?:NOT(?=\s|$)|!(?=\S))"),
    "plus": re.compile(r"(?:^|[\s(])\+(?=\S)"),
    "minus": re.compile(r"(?:^|[\s(])-(?=\S)"),
    "quote": re.compile(r'"'),
    "field": re.compile(r"(?:^|[\s(+\-])[A-Za-z_][\w.]*:(?=\S)"),
}
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_OPERATOR_HINTS = ("AND", "OR", "NOT", "&&", "||", "!", "+", "-", '"', ":")  # no pattern matches without one


def answer_cut_off(response: object) -> bool | None:
    """Whether the response's last ``<answer>`` is never closed: what a response cut by the length limit (or a
    policy that stops mid-answer) looks like; its query is lost. None when the response opens no answer."""
    if not isinstance(response, str):
        return None
    start = response.rfind(_ANSWER_OPEN)
    if start < 0:
        return None
    return response.find(_ANSWER_CLOSE, start) < 0


def query_statistics(query: str | None, response: object = None, max_query_terms: int | None = None) -> dict:
    """Per-sample query statistics, every key prefixed ``query_``.

    Args:
        query: the query the response gave (None: it gave none).
        response: the response text, to tell a query cut by the response length (see :func:`answer_cut_off`).
        max_query_terms: the searcher's limit on whitespace terms (None: no limit).

    Returns:
        ``query_terms`` (whitespace terms of the cleaned query), ``query_distinct_ratio`` (distinct terms / terms,
        case-insensitive; 1.0 = no word repeated), ``query_cut_by_max_terms`` (more terms than the searcher reads),
        ``query_cut_by_length`` (see :func:`answer_cut_off`), ``query_truncated`` (either cut) and one
        ``query_op_<name>`` flag per :data:`QUERY_OPERATORS` entry. A value is None where it does not apply (no
        query; no answer opened), so averages run over the samples it applies to.
    """
    cut_by_length = answer_cut_off(response)
    stats: dict = {"query_terms": None, "query_distinct_ratio": None, "query_cut_by_max_terms": None,
                   "query_cut_by_length": cut_by_length, "query_truncated": cut_by_length}
    stats.update({f"query_op_{name}": None for name in QUERY_OPERATORS})
    if query is None:
        return stats
    text = clean_query(query, max_terms=None)
    terms = text.split()
    cut_by_terms = max_query_terms is not None and len(terms) > max_query_terms
    stats.update(query_terms=len(terms), query_cut_by_max_terms=cut_by_terms,
                 query_truncated=cut_by_terms or bool(cut_by_length))
    if terms:
        stats["query_distinct_ratio"] = len({t.lower() for t in terms}) / len(terms)
    maybe = any(hint in text for hint in _OPERATOR_HINTS)
    stats.update({f"query_op_{name}": maybe and bool(pattern.search(text)) for name, pattern in QUERY_OPERATORS.items()})
    return stats
