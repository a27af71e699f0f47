"""Export the item pool as a retrieval corpus: JSONL shards of ``{"id", "contents"}``.

    python -m recr1.data.corpus --items data/amazon_c4/raw/sampled_item_metadata_1M.jsonl \\
        --out data/amazon_c4/corpus [--shard-size 250000] [--strict]

The output folder holds ``part-00000.jsonl``, ``part-00001.jsonl``, ... (Pyserini's
JsonCollection indexes a folder of such files, one thread per file), one document a line with
``contents`` = title + description.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Iterable

from tqdm import tqdm

from recr1.data.bad_input import BadInputError, BadInputReport, MissingInputError
from recr1.data.item_pool import iter_items
from recr1.data.raw_io import require_file

SHARD_PATTERN = "part-{:05d}.jsonl"
DEFAULT_SHARD_SIZE = 250_000


def write_corpus(
    docs: Iterable[tuple[str, str]],
    out_dir: str,
    shard_size: int = DEFAULT_SHARD_SIZE,
    total: int | None = None,
    desc: str = "corpus",
) -> tuple[list[str], int]:
    """Write ``(id, contents)`` pairs as JSONL shards of at most ``shard_size`` lines into ``out_dir``.

    Shards left in ``out_dir`` by an earlier export are removed first, so an index built from the
    folder never mixes two exports. Returns ``(shard_paths, n_docs)``.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(out_dir, "part-*.jsonl")):
        os.remove(stale)
    paths: list[str] = []
    n_docs = 0
    out = None
    try:
        for doc_id, contents in tqdm(docs, total=total, desc=desc, unit=" docs", mininterval=1.0):
            if n_docs % shard_size == 0:
                if out is not None:
                    out.close()
                paths.append(os.path.join(out_dir, SHARD_PATTERN.format(len(paths))))
                out = open(paths[-1], "w", encoding="utf-8")
            out.write(json.dumps({"id": doc_id, "contents": contents}, ensure_ascii=False))
            out.write("\n")
            n_docs += 1
    finally:
        if out is not None:
            out.close()
    return paths, n_docs


def export_item_pool(items_path: str, out_dir: str, shard_size: int = DEFAULT_SHARD_SIZE,
                     report: BadInputReport | None = None) -> tuple[list[str], int]:
    """Export an Amazon-C4-format item pool (item_id, category, metadata) as a corpus.

    Returns ``(shard_paths, n_docs)``; bad rows go to ``report``.
    """
    report = report if report is not None else BadInputReport()
    require_file(items_path, "item pool file (--items)")
    docs = ((item.item_id, item.text) for item in iter_items(items_path, report))
    return write_corpus(docs, out_dir, shard_size=shard_size, desc="export items")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--items", required=True, help="item pool JSONL (item_id, category, metadata)")
    parser.add_argument("--out", required=True, help="output folder for the JSONL shards")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="documents per shard")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad input row")
    args = parser.parse_args(argv)

    report = BadInputReport(strict=args.strict)
    start = time.perf_counter()
    try:
        paths, n_docs = export_item_pool(args.items, args.out, args.shard_size, report)
    except (MissingInputError, BadInputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {n_docs} documents in {len(paths)} shard(s) to {args.out} "
          f"({seconds:.1f} s, {n_docs / max(seconds, 1e-9):,.0f} docs/s)")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
