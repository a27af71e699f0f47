"""Tolerant readers for the raw JSONL and CSV files, reporting bad rows to a BadInputReport.

Both readers yield ``(line_number, row_dict)`` with 1-based physical line numbers (for a CSV
record spanning several lines, the line it starts on), so a report can point at the exact spot.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence

from recr1.data.bad_input import BadInputReport, MissingInputError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # reviews and descriptions can be long


def require_file(path: str | os.PathLike, what: str) -> str:
    """Return ``path`` as a string, or raise MissingInputError naming ``what`` and the path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingInputError(f"{what} not found: {path}")
    return path


def require_columns(columns: Iterable[str], required: Sequence[str], source: str) -> None:
    """Raise MissingInputError naming the first required column that ``columns`` lacks."""
    present = set(columns)
    missing = [c for c in required if c not in present]
    if missing:
        raise MissingInputError(
            f"{source}: missing column(s) {missing}; found {sorted(present)}"
        )


def repair_utf8(text: str) -> tuple[str, bool]:
    """Replace surrogate-escaped bad bytes by U+FFFD. Returns ``(text, had_bad_bytes)``."""
    if text.isascii():
        return text, False
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), True


def read_jsonl(path: str, report: BadInputReport, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, obj)`` for each JSON object line of ``path`` (gzip-compressed when it ends in ``.gz``).

    Malformed lines and lines that are not objects are reported as ``malformed_json``; bad bytes
    as ``non_utf8`` (the line is still parsed with U+FFFD in place of them). If the first object
    lacks a ``required`` key the file has the wrong schema and MissingInputError is raised; a
    later object lacking one is reported as ``missing_field`` and skipped. Empty or null values
    are left to the caller, which knows what they mean.
    """
    schema_checked = False
    opener = gzip.open if path.endswith(".gz") else open  # Amazon Reviews 2023 ships .jsonl.gz
    with opener(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                report.add("non_utf8", path, line_no)
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                report.add("malformed_json", path, line_no, str(e))
                continue
            if not isinstance(obj, dict):
                report.add("malformed_json", path, line_no, f"expected a JSON object, got {type(obj).__name__}")
                continue
            if not schema_checked:
                require_columns(obj.keys(), required, f"{path} (line {line_no})")
                schema_checked = True
            absent = [k for k in required if k not in obj]
            if absent:
                report.add("missing_field", path, line_no, f"missing {absent}")
                continue
            yield line_no, obj


def read_csv(path: str, report: BadInputReport, required: Sequence[str],
             non_empty: Sequence[str] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, row)`` for each record of the CSV file ``path`` (header on line 1).

    A header without a ``required`` column raises MissingInputError. Records with an empty
    ``non_empty`` field (default: every required one) are reported as ``missing_field`` and
    skipped; bad bytes are reported as ``non_utf8``.
    """
    non_empty = required if non_empty is None else non_empty
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        require_columns(header, required, path)
        start_line = reader.line_num + 1
        for row in reader:
            line_no, start_line = start_line, reader.line_num + 1
            bad_bytes = False
            for key, value in row.items():
                if isinstance(value, str):
                    row[key], bad = repair_utf8(value)
                    bad_bytes |= bad
            if bad_bytes:
                report.add("non_utf8", path, line_no)
            absent = [k for k in non_empty if not (row.get(k) or "").strip()]
            if absent:
                report.add("missing_field", path, line_no, f"empty {absent}")
                continue
            yield line_no, row
