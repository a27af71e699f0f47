"""The SFT target of the demo: what a naive instruction follower writes, with no knowledge of the target.

It keeps the first content words of the request in their original order and spelling (no stop words, no
punctuation, each word once) and wraps them in the answer format the reward parses::

    <think>Use the main words.</think><answer>{"query": "need new tent ..."}</answer>

Nothing here looks at the ground-truth item, so SFT teaches the format and copying, not the answer:
which of the request's words find the product is left for RL to discover.
"""
from __future__ import annotations

import json
import re

NAIVE_QUERY_WORDS = 12
NAIVE_THINK = "Use the main words."

# Function words and first-person chatter; none of them names a product.
STOP_WORDS = frozenset(
    """a about after again all also am an and any are as at be because been before being but by can
    could did do does doing for from had has have having he her here him his how i if in into is it its
    just me more most my myself no nor not now of off on once only or other our ours out over own same
    she should so some such than that the their them then there these they this those through to too
    under until up very was we were what when where which while who why will with would you your
    really please want need looking find get got one ones thing things something anything much""".split()
)

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def request_keywords(text: str) -> list[str]:
    """Words of ``text`` that are not stop words, in order and with repeats, punctuation removed."""
    words = []
    for match in _WORD.finditer(text):
        word = match.group(0).strip("'-")
        if word and word.lower() not in STOP_WORDS:
            words.append(word)
    return words


def content_words(text: str) -> list[str]:
    """:func:`request_keywords` with each word kept at its first occurrence only (case-insensitive)."""
    seen: set[str] = set()
    words = []
    for word in request_keywords(text):
        if word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
    return words


def naive_query(request: str, n_words: int = NAIVE_QUERY_WORDS) -> str:
    """The first ``n_words`` content words of ``request``, space-separated."""
    if n_words < 1:
        raise ValueError(f"n_words must be >= 1, got {n_words}")
    return " ".join(content_words(request)[:n_words])


def format_response(query: str, think: str = NAIVE_THINK) -> str:
    """``<think>{think}</think><answer>{"query": ...}</answer>`` with the query JSON-escaped."""
    return f"<think>{think}</think><answer>{json.dumps({'query': query})}</answer>"


def naive_response(request: str, n_words: int = NAIVE_QUERY_WORDS) -> str:
    """The full SFT response for ``request`` (see the module docstring)."""
    return format_response(naive_query(request, n_words))
