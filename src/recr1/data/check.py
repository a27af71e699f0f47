"""Validate prepared parquet files against the row contract (see ``recr1.data.records``).

    python -m recr1.data.check data/amazon_c4/train.parquet [more.parquet ...]

Prints ``OK`` with the row count per data source, or each problem with its row number, and
exits with status 1 if any file breaks the contract.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

import pyarrow.parquet as pq

REQUIRED_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
EXTRA_INFO_KEYS = ("split", "index", "qid")
ROLES = {"system", "user", "assistant"}
# Our own data sources end with their split: amazon_c4_train, amazon_c4_Video_Games_test, esci_val,
# amazon_review_All_Beauty_inductive_test.
OWN_PREFIXES = ("amazon_c4_", "esci_", "amazon_review_")


def check_row(row: dict) -> list[str]:
    """Contract violations of one row (a dict as read from parquet); empty when the row is valid."""
    errors = []
    source = row.get("data_source")
    if not isinstance(source, str) or not source:
        errors.append(f"data_source must be a non-empty string, got {source!r}")
    prompt = row.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        errors.append(f"prompt must be a non-empty list of chat messages, got {type(prompt).__name__}")
        prompt = []
    for i, msg in enumerate(prompt):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES or not isinstance(msg.get("content"), str):
            errors.append(f"prompt[{i}] must be {{'role': one of {sorted(ROLES)}, 'content': str}}, got {msg!r}")
    if prompt and not any(isinstance(m, dict) and m.get("role") == "user" for m in prompt):
        errors.append("prompt has no user message")
    if not isinstance(row.get("ability"), str):
        errors.append(f"ability must be a string, got {row.get('ability')!r}")

    reward = row.get("reward_model")
    truth = reward.get("ground_truth") if isinstance(reward, dict) else None
    target = truth.get("target") if isinstance(truth, dict) else None
    if not isinstance(reward, dict) or reward.get("style") != "rule":
        errors.append(f"reward_model.style must be 'rule', got {reward!r}")
    if not isinstance(target, list) or not target or not all(isinstance(t, str) and t for t in target):
        errors.append(f"reward_model.ground_truth.target must be a non-empty list of item ids, got {target!r}")

    extra = row.get("extra_info")
    if not isinstance(extra, dict):
        errors.append(f"extra_info must be a dict, got {extra!r}")
        return errors
    missing = [k for k in EXTRA_INFO_KEYS if extra.get(k) is None]
    if missing:
        errors.append(f"extra_info lacks {missing}")
    index = extra.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        errors.append(f"extra_info.index must be an int >= 0, got {index!r}")
    split = extra.get("split")
    if isinstance(source, str) and source.startswith(OWN_PREFIXES) and not source.endswith(f"_{split}"):
        errors.append(f"data_source {source!r} does not match extra_info.split {split!r}")
    request = extra.get("request")
    if request is not None:
        content = " ".join(m.get("content", "") for m in prompt if isinstance(m, dict))
        if not isinstance(request, str) or request.strip() not in content:
            errors.append("extra_info.request does not appear in the prompt")
    return errors


def check_rows(rows: list[dict], max_errors: int = 20) -> tuple[list[str], int]:
    """Check all rows; returns (first ``max_errors`` messages with row numbers, total number of errors).

    Besides each row's own checks, ``(split, index)`` must be unique.
    """
    messages: list[str] = []
    total = 0
    seen: dict[tuple, int] = {}

    def note(msg: str) -> None:
        nonlocal total
        total += 1
        if len(messages) < max_errors:
            messages.append(msg)

    for n, row in enumerate(rows):
        for err in check_row(row):
            note(f"row {n}: {err}")
        extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        key = (extra.get("split"), extra.get("index"))
        if None not in key:
            if key in seen:
                note(f"row {n}: (split, index) {key} repeats row {seen[key]}")
            seen.setdefault(key, n)
    return messages, total


def check_file(path: str, max_errors: int = 20) -> tuple[list[str], int, Counter]:
    """Check one parquet file: returns (messages, number of errors, rows per data source)."""
    if not os.path.isfile(path):
        return [f"file not found: {path}"], 1, Counter()
    table = pq.read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        return [f"missing column(s) {missing}; found {table.column_names}"], 1, Counter()
    rows = table.to_pylist()
    messages, total = check_rows(rows, max_errors)
    return messages, total, Counter(r.get("data_source") for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.check", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="prepared parquet files")
    parser.add_argument("--max-errors", type=int, default=20, help="problems printed per file")
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        messages, total, sources = check_file(path, args.max_errors)
        if total:
            failed = True
            print(f"{path}: FAILED, {total} problem(s)")
            for msg in messages:
                print(f"  {msg}")
        else:
            counts = ", ".join(f"{k}={v}" for k, v in sorted(sources.items()))
            print(f"{path}: OK, {sum(sources.values())} rows ({counts})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
