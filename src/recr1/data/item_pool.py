"""Reading the Amazon-C4 item pool (``sampled_item_metadata_1M.jsonl``: item_id, category, metadata).

``metadata`` is a string in the released file (the title followed by the description). A dict
in the Amazon-Reviews-2023 style (``title``, ``description`` as a string or a list) is accepted
too, so a pool rebuilt from those files works unchanged.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from recr1.data.bad_input import BadInputReport
from recr1.data.raw_io import read_jsonl

ITEM_FILE = "sampled_item_metadata_1M.jsonl"
ITEM_COLUMNS = ("item_id", "category", "metadata")

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Item:
    """One catalog item: its id, category and searchable text (title + description)."""

    item_id: str
    category: str
    text: str


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_as_text(v) for v in value)
    return str(value)


def item_text(metadata) -> str:
    """Title + description of an item's ``metadata`` (string or dict), whitespace collapsed."""
    if isinstance(metadata, dict):
        text = " ".join(_as_text(metadata.get(k)) for k in ("title", "description"))
    else:
        text = _as_text(metadata)
    return _SPACES.sub(" ", text).strip()


def iter_items(path: str, report: BadInputReport) -> Iterator[Item]:
    """Yield the unique items of an item-pool JSONL file, reporting bad rows to ``report``.

    Empty metadata is reported and the item kept with empty text (a request may target it);
    a repeated item id is reported and only its first occurrence kept.
    """
    seen: set[str] = set()
    for line, obj in read_jsonl(path, report, ITEM_COLUMNS):
        item_id = _as_text(obj["item_id"]).strip()
        if not item_id:
            report.add("missing_field", path, line, "empty item_id")
            continue
        if item_id in seen:
            report.add("duplicate_item_id", path, line, item_id)
            continue
        seen.add(item_id)
        text = item_text(obj["metadata"])
        if not text:
            report.add("empty_metadata", path, line, item_id)
        yield Item(item_id=item_id, category=_as_text(obj["category"]).strip(), text=text)
