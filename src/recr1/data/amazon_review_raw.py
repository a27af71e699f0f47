"""Reading one category of Amazon Reviews 2023 (McAuley lab): the reviews file and the item metadata file.

``<Category>.jsonl`` (or ``.jsonl.gz``): one review a line with ``rating``, ``title``, ``text``, ``images``,
``asin``, ``parent_asin``, ``user_id``, ``timestamp`` (milliseconds), ``helpful_vote``, ``verified_purchase``.
``meta_<Category>.jsonl`` (or ``.gz``): one item a line with ``main_category``, ``title``, ``average_rating``,
``rating_number``, ``features`` (list), ``description`` (list), ``price``, ``images``, ``videos``, ``store``,
``categories``, ``details``, ``parent_asin``, ``bought_together``. Items are keyed by ``parent_asin`` (a
product's variants share it), as in the benchmark's own splits.
"""
from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from recr1.data.bad_input import BadInputReport, MissingInputError
from recr1.data.raw_io import read_jsonl

REVIEW_COLUMNS = ("user_id", "parent_asin", "timestamp")
META_COLUMNS = ("parent_asin", "title")
ITEM_TEXT_FIELDS = ("title", "features", "description")  # what the BM25 corpus indexes

_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ItemMeta:
    """One item of the metadata file: its parent_asin, title, searchable text and main category."""

    item_id: str
    title: str
    text: str
    category: str


@dataclass(frozen=True)
class Review:
    """One interaction: who (user_id) reviewed which item (parent_asin) when (ms), at which file line."""

    user_id: str
    item_id: str
    timestamp: int
    line: int


def raw_paths(raw_dir: str, category: str) -> tuple[str, str]:
    """``(reviews, meta)`` paths of ``category`` in ``raw_dir`` (``.jsonl`` or ``.jsonl.gz``).

    Raises MissingInputError naming every candidate when a file is absent.
    """
    found = []
    for stem in (category, f"meta_{category}"):
        candidates = [os.path.join(raw_dir, stem + ext) for ext in (".jsonl", ".jsonl.gz")]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            raise MissingInputError(f"Amazon Reviews 2023 file not found: none of {candidates}")
        found.append(path)
    return found[0], found[1]


def clean_text(value) -> str:
    """Plain text of a metadata field (a string, a list of strings, or null): HTML unescaped, tags dropped,
    whitespace collapsed."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in (clean_text(v) for v in value) if t)
    return _SPACES.sub(" ", _TAGS.sub(" ", html.unescape(str(value)))).strip()


def _id(value) -> str:
    return "" if value is None else str(value).strip()


def iter_meta(path: str, report: BadInputReport) -> Iterator[ItemMeta]:
    """The unique items of a metadata file. A row without parent_asin is skipped, a repeated parent_asin keeps
    its first row, an item with no title, features or description is kept with empty text; all are reported."""
    seen: set[str] = set()
    for line, obj in read_jsonl(path, report, META_COLUMNS):
        item_id = _id(obj.get("parent_asin"))
        if not item_id:
            report.add("missing_field", path, line, "empty parent_asin")
            continue
        if item_id in seen:
            report.add("duplicate_item_id", path, line, item_id)
            continue
        seen.add(item_id)
        text = " ".join(t for t in (clean_text(obj.get(k)) for k in ITEM_TEXT_FIELDS) if t)
        if not text:
            report.add("empty_metadata", path, line, item_id)
        yield ItemMeta(item_id=item_id, title=clean_text(obj.get("title")), text=text,
                       category=clean_text(obj.get("main_category")))


def parse_timestamp(value) -> int | None:
    """The review time in ms as an int (ints, integral floats and digit strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def iter_reviews(path: str, items: set[str], report: BadInputReport) -> Iterator[Review]:
    """The usable reviews of a reviews file, in file order. Skipped and reported: rows with an empty user_id or
    parent_asin (``missing_field``), a timestamp that is not an integer (``bad_timestamp``), an item with no
    metadata row (``item_without_metadata``)."""
    for line, obj in read_jsonl(path, report, REVIEW_COLUMNS):
        user_id, item_id = _id(obj.get("user_id")), _id(obj.get("parent_asin"))
        empty = [k for k, v in (("user_id", user_id), ("parent_asin", item_id)) if not v]
        if empty:
            report.add("missing_field", path, line, f"empty {empty}")
            continue
        timestamp = parse_timestamp(obj.get("timestamp"))
        if timestamp is None:
            report.add("bad_timestamp", path, line, repr(obj.get("timestamp")))
            continue
        if item_id not in items:
            report.add("item_without_metadata", path, line, item_id)
            continue
        yield Review(user_id=user_id, item_id=item_id, timestamp=timestamp, line=line)
