"""Counting and reporting of bad input rows in the raw data files.

Every prep step reads real files that can be dirty (malformed JSON lines, broken bytes, empty
metadata, duplicate ids, requests whose target is missing). Nothing is dropped silently: each
problem is counted by kind with the first few line numbers, and the summary is printed at the
end. With ``strict=True`` the first problem raises :class:`BadInputError` instead.

Schema problems (a missing file, a missing column) are not counted: they fail at once with
:class:`MissingInputError`, because nothing useful can be produced without them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

# The kinds a reader may report, with the phrase the summary uses for each.
BAD_INPUT_KINDS = OrderedDict(
    malformed_json="malformed JSON line (skipped)",
    non_utf8="non-UTF-8 bytes (kept, bad bytes replaced by U+FFFD)",
    missing_field="row missing a required field or with an empty value (skipped)",
    empty_metadata="item with empty metadata (kept with empty text)",
    duplicate_item_id="duplicate item id (first occurrence kept)",
    target_not_in_pool="request whose target is not in the item pool (skipped)",
    bad_timestamp="row whose timestamp is not an integer (skipped)",
    item_without_metadata="review of an item that has no metadata row (skipped)",
)


class MissingInputError(FileNotFoundError):
    """A required file or column is absent; the message names it."""


class BadInputError(ValueError):
    """A bad row under ``strict=True``; the message names the file, line and kind."""


@dataclass
class _KindCount:
    count: int = 0
    first_lines: list[int] = field(default_factory=list)


class BadInputReport:
    """Counts bad rows per kind and per file, keeping the first ``max_examples`` line numbers.

    Args:
        strict: raise :class:`BadInputError` on the first bad row instead of counting it.
        max_examples: how many line numbers to keep per (file, kind).
    """

    def __init__(self, strict: bool = False, max_examples: int = 5):
        self.strict = strict
        self.max_examples = max_examples
        self._counts: "OrderedDict[tuple[str, str], _KindCount]" = OrderedDict()

    def add(self, kind: str, source: str, line: int, detail: str = "") -> None:
        """Record one bad row of ``kind`` at 1-based ``line`` of file ``source``."""
        if kind not in BAD_INPUT_KINDS:
            raise KeyError(f"unknown bad-input kind {kind!r}; expected one of {list(BAD_INPUT_KINDS)}")
        if self.strict:
            suffix = f": {detail}" if detail else ""
            raise BadInputError(f"{source}, line {line}: {BAD_INPUT_KINDS[kind]}{suffix} (--strict)")
        entry = self._counts.setdefault((source, kind), _KindCount())
        entry.count += 1
        if len(entry.first_lines) < self.max_examples:
            entry.first_lines.append(line)

    def count(self, kind: str | None = None) -> int:
        """Total bad rows, or of one ``kind`` only, over all files."""
        return sum(c.count for (_, k), c in self._counts.items() if kind is None or k == kind)

    def first_lines(self, kind: str, source: str | None = None) -> list[int]:
        """First recorded line numbers of ``kind`` (in one file, or over all files in read order)."""
        lines: list[int] = []
        for (src, k), c in self._counts.items():
            if k == kind and (source is None or src == source):
                lines.extend(c.first_lines)
        return lines

    def as_dict(self) -> dict[str, dict[str, dict]]:
        """``{file: {kind: {"count": n, "first_lines": [...]}}}``, JSON-ready."""
        out: dict[str, dict[str, dict]] = {}
        for (src, kind), c in self._counts.items():
            out.setdefault(src, {})[kind] = {"count": c.count, "first_lines": list(c.first_lines)}
        return out

    def summary(self) -> str:
        """A human-readable multi-line summary; says so when the input was clean."""
        if not self._counts:
            return "bad input: none"
        lines = [f"bad input: {self.count()} row(s)"]
        for (src, kind), c in self._counts.items():
            more = ", ..." if c.count > len(c.first_lines) else ""
            where = ", ".join(str(n) for n in c.first_lines) + more
            lines.append(f"  {src}: {c.count} x {BAD_INPUT_KINDS[kind]} [lines {where}]")
        return "\n".join(lines)
