"""Read the catalog corpus that both index builders take: JSONL, one ``{"id", "contents"}`` a line.

A corpus is a folder of ``*.jsonl`` / ``*.json`` files (optionally ``.gz``), the layout Pyserini's
``JsonCollection`` reads, or a single such file. Bad rows fail at once with the file and line.
"""
from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator

CORPUS_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


class CorpusError(ValueError):
    """A corpus file or row that cannot be indexed; the message names the file and line."""


def corpus_files(path: str | os.PathLike) -> list[str]:
    """The corpus files under ``path`` (a folder or one file), sorted by name."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"corpus not found: {path}")
    files = sorted(
        os.path.join(path, name)
        for name in os.listdir(path)
        if name.endswith(CORPUS_SUFFIXES) and os.path.isfile(os.path.join(path, name))
    )
    if not files:
        raise FileNotFoundError(f"no corpus files ({', '.join('*' + s for s in CORPUS_SUFFIXES)}) in {path}")
    return files


def _open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_corpus(path: str | os.PathLike, check_duplicates: bool = True) -> Iterator[tuple[str, str]]:
    """Yield ``(id, contents)`` for every row of the corpus, in file then line order.

    Raises:
        CorpusError: a line that is not a JSON object with a non-empty string/number ``id`` and a
            string ``contents``, or (with ``check_duplicates``) an id seen before.
    """
    seen: dict[str, tuple[str, int]] = {}
    for file in corpus_files(path):
        with _open_text(file) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{file}, line {line_no}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise CorpusError(f"{file}, line {line_no}: expected a JSON object, got {type(row).__name__}")
                doc_id, contents = row.get("id"), row.get("contents")
                if isinstance(doc_id, (int, float)) and not isinstance(doc_id, bool):
                    doc_id = str(doc_id)
                if not isinstance(doc_id, str) or not doc_id.strip():
                    raise CorpusError(f"{file}, line {line_no}: missing or empty 'id' (got {doc_id!r})")
                if "\n" in doc_id:
                    raise CorpusError(f"{file}, line {line_no}: 'id' {doc_id!r} contains a newline")
                if not isinstance(contents, str):
                    raise CorpusError(f"{file}, line {line_no}: 'contents' must be a string (got {contents!r:.80})")
                if check_duplicates:
                    if doc_id in seen:
                        first_file, first_line = seen[doc_id]
                        raise CorpusError(
                            f"{file}, line {line_no}: duplicate id {doc_id!r} (first at {first_file}, line {first_line})"
                        )
                    seen[doc_id] = (file, line_no)
                yield doc_id, contents


def count_corpus(path: str | os.PathLike) -> int:
    """Number of rows in the corpus, validating every row (see :func:`iter_corpus`)."""
    return sum(1 for _ in iter_corpus(path))


def write_sorted_by_id(path: str | os.PathLike, out_file: str | os.PathLike) -> list[str]:
    """Copy every corpus row, unchanged, into one JSONL file ordered by id (code-point order).

    Rows are located by byte offset and copied one by one, so memory holds only (id, offset) pairs
    (gzipped files are read into memory instead). Validate the corpus first (:func:`iter_corpus`).

    Returns:
        The ids in the order written.
    """
    files = corpus_files(path)
    entries: list[tuple[str, int, int]] = []  # (id, file number, byte offset or line number)
    gz_lines: dict[int, list[bytes]] = {}
    for number, file in enumerate(files):
        if file.endswith(".gz"):
            with gzip.open(file, "rb") as f:
                lines = [line for line in f if line.strip()]
            gz_lines[number] = lines
            entries.extend((_row_id(line), number, i) for i, line in enumerate(lines))
            continue
        with open(file, "rb") as f:
            offset = 0
            for line in f:
                if line.strip():
                    entries.append((_row_id(line), number, offset))
                offset += len(line)
    entries.sort()
    handles = {number: open(file, "rb") for number, file in enumerate(files) if number not in gz_lines}
    try:
        with open(out_file, "wb") as out:
            for _, number, where in entries:
                if number in gz_lines:
                    line = gz_lines[number][where]
                else:
                    handles[number].seek(where)
                    line = handles[number].readline()
                out.write(line if line.endswith(b"\n") else line + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    return [doc_id for doc_id, _, _ in entries]


def _row_id(line: bytes) -> str:
    doc_id = json.loads(line)["id"]
    return doc_id if isinstance(doc_id, str) else str(doc_id)
