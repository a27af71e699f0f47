"""The demo's prompts: the request's keywords (stop words and punctuation removed) and one line of instruction.

A real LLM reads the full ``sparse`` template and copies any product word it meets. A 0.7M-parameter policy
trained for a few minutes cannot: in a 150-token chatty request it learns to guess product words from the
words around them instead of copying them, and guessing fails on categories it never saw. Dropping the stop
words (what BM25's analyzer does anyway) halves the prompt and leaves mostly distinct words, which it learns
to copy. The request itself is untouched in the data (``request`` column): the raw-request baseline and the
reward's ground truth do not change.

``compact`` (the request with one line of instruction) and the library's ``sparse`` template remain available
with ``--set prompt_template=compact|sparse``.
"""
from __future__ import annotations

import pandas as pd

from recr1.data.prompts import PROMPT_TEMPLATES, build_prompt, register_template
from recr1.demo.naive_query import request_keywords

KEYWORDS = "keywords"
COMPACT = "compact"
COMPACT_TEMPLATE = "Write a keyword query that finds the product this shopper wants.\nRequest: {request}"
KEYWORDS_TEMPLATE = "Keywords of a shopper's request: {keywords}\nWrite a search query for the product."


def ensure_demo_templates() -> None:
    """Register the demo's request templates with recr1.data.prompts (idempotent)."""
    if COMPACT not in PROMPT_TEMPLATES:
        register_template(COMPACT, COMPACT_TEMPLATE)


def keyword_prompt(request: str) -> list[dict[str, str]]:
    """Chat messages for ``request`` with the keywords template."""
    return [{"role": "user", "content": KEYWORDS_TEMPLATE.format(keywords=" ".join(request_keywords(request)))}]


def prompt_builder(template: str):
    """``request -> chat messages`` for ``template``: keywords, compact, or any recr1.data.prompts template."""
    if template == KEYWORDS:
        return keyword_prompt
    ensure_demo_templates()
    if template not in PROMPT_TEMPLATES:
        raise KeyError(f"unknown prompt template {template!r}; known: {sorted([KEYWORDS, *PROMPT_TEMPLATES])}")
    return lambda request: build_prompt(request, template)


def rewrite_prompts(frame: pd.DataFrame, template: str) -> pd.DataFrame:
    """A copy of prepared rows whose ``prompt`` is rebuilt from their ``request`` with ``template``."""
    build = prompt_builder(template)
    out = frame.copy()
    out["prompt"] = [build(request) for request in frame["request"]]
    return out
