"""Make any text an LLM writes safe to hand to a retriever.

A query can hold anything: Lucene syntax, thousands of words, emoji, control characters, lone
UTF-16 surrogates (which cannot even cross into Java), or nothing at all. :func:`clean_query`
turns it into plain text that every backend accepts; the meaning of the words is left alone.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

DEFAULT_MAX_QUERY_TERMS = 512
DEFAULT_MAX_QUERY_CHARS = 20_000

# Unicode categories that carry no searchable text: control, format (zero-width, bidi marks),
# surrogate, private use and unassigned code points.
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def _clean_char(ch: str) -> str:
    if ch.isspace():
        return " "
    if unicodedata.category(ch) in _DROP_CATEGORIES:
        return " "
    return ch


def clean_query(
    text: object,
    max_terms: int | None = DEFAULT_MAX_QUERY_TERMS,
    max_chars: int | None = DEFAULT_MAX_QUERY_CHARS,
) -> str:
    """Plain, bounded query text.

    Control/format/surrogate characters become spaces, whitespace runs collapse to one space, and
    the text is cut to its first ``max_terms`` whitespace-separated terms (``None``: no limit).
    ``max_chars`` caps the input read first, so a megabyte of text costs nothing. ``None`` and
    non-strings become ``""`` or ``str(text)``.

    Returns:
        The cleaned query; ``""`` when nothing searchable is left.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    if not text.isascii() or not text.isprintable():
        text = "".join(_clean_char(ch) for ch in text)
    terms = text.split()
    if max_terms is not None and len(terms) > max_terms:
        terms = terms[: max(0, max_terms)]
    return " ".join(terms)


def rec_r1_wrap(query: str) -> str:
    """Rec-R1's ``(contents:{q})`` wrapping, kept only to reproduce its numbers.

    With a bag-of-words analyzer, ``contents:word`` becomes one token that matches nothing, so the
    first word of every query is lost. Never used unless asked for (``rec_r1_compat=True``).
    """
    return f"(contents:{query})"


@dataclass(frozen=True)
class QueryKey:
    """The text a query is searched as: :func:`clean_query` to ``max_terms`` terms, wrapped Rec-R1's way if asked
    (what the BM25 and dense searchers search and what their query caches key on; picklable, so the searcher pool
    computes it in the driver). ``exact`` False means the searcher preprocesses in a way not known here: the raw
    text is the key (still correct for a cache, only fewer hits)."""

    max_terms: int | None = None
    rec_r1_compat: bool = False
    exact: bool = True

    def __call__(self, query: str) -> str:
        if not self.exact:
            return query
        text = clean_query(query, max_terms=self.max_terms)
        return rec_r1_wrap(text) if text and self.rec_r1_compat else text
