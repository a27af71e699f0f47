"""Prepare Amazon-C4 (or the synthetic catalog, which has the same raw format) for RL training.

    python -m recr1.data.amazon_c4 --raw-dir data/amazon_c4/raw --out-dir data/amazon_c4 \\
        [--template sparse|dense] [--val-size 1000] [--seed 42] \\
        [--test-domains Video_Games,Baby_Products,Office_Products,Sports_and_Outdoors] \\
        [--max-requests N] [--strict] [--from-hub]

Reads ``test.csv`` (qid, query, item_id, user_id, ori_rating, ori_review) and
``sampled_item_metadata_1M.jsonl`` (item_id, category, metadata) and writes ``train.parquet``,
``val.parquet`` (val + every test domain, so validation reports each domain), ``test.parquet``
and ``prep_report.json`` (row counts and the bad-input report). ``--from-hub`` downloads the two
files from the HF dataset ``McAuley-Lab/Amazon-C4`` (into ``--raw-dir`` when given).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence

from tqdm import tqdm

from recr1.data.bad_input import BadInputError, BadInputReport, MissingInputError
from recr1.data.item_pool import ITEM_FILE, iter_items
from recr1.data.prompts import PROMPT_TEMPLATES
from recr1.data.raw_io import read_csv, require_file
from recr1.data.records import make_row, write_rows
from recr1.data.splits import DEFAULT_TEST_DOMAINS, Request, domain_matcher, split_requests

REQUEST_FILE = "test.csv"
REQUEST_COLUMNS = ("qid", "query", "item_id")
HUB_DATASET = "McAuley-Lab/Amazon-C4"
DATA_SOURCE_PREFIX = "amazon_c4"


class HubUnreachableError(RuntimeError):
    """The HF hub could not deliver the Amazon-C4 files."""


def download_from_hub(local_dir: str | None = None) -> tuple[str, str]:
    """Download ``test.csv`` and the item pool from the HF hub; returns their local paths."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise HubUnreachableError("--from-hub needs the huggingface_hub package (pip install huggingface_hub)") from e
    paths = []
    for filename in (REQUEST_FILE, ITEM_FILE):
        try:
            paths.append(hf_hub_download(HUB_DATASET, filename, repo_type="dataset", local_dir=local_dir))
        except Exception as e:  # offline mode, DNS, HTTP and cache errors all mean the same here
            raise HubUnreachableError(
                f"hub not reachable: could not download {filename} of dataset {HUB_DATASET} "
                f"({type(e).__name__}: {e}). Download {REQUEST_FILE} and {ITEM_FILE} by hand and pass --raw-dir."
            ) from e
    return paths[0], paths[1]


def load_item_categories(items_path: str, report: BadInputReport) -> dict[str, str]:
    """``{item_id: category}`` of the item pool (metadata text is not kept: the pool can be 1M items)."""
    return {
        item.item_id: item.category
        for item in tqdm(iter_items(items_path, report), desc="read items", unit=" items", mininterval=1.0)
    }


def load_requests(
    requests_path: str,
    categories: dict[str, str],
    report: BadInputReport,
    max_requests: int | None = None,
) -> list[Request]:
    """Requests of ``test.csv`` whose target is in the pool, in file order (at most ``max_requests``)."""
    requests: list[Request] = []
    rows = read_csv(requests_path, report, REQUEST_COLUMNS)
    for line, row in tqdm(rows, desc="read requests", unit=" requests", mininterval=1.0):
        if max_requests is not None and len(requests) >= max_requests:
            break
        item_id = row["item_id"].strip()
        category = categories.get(item_id)
        if category is None:
            report.add("target_not_in_pool", requests_path, line, item_id)
            continue
        requests.append(Request(line=line, qid=row["qid"].strip(), text=row["query"].strip(),
                                target=(item_id,), category=category))
    return requests


def build_rows(splits: dict[str, list[tuple[str, Request]]], template: str) -> dict[str, list[dict]]:
    """Prepared rows per split; ``extra_info.index`` is the position within the split."""
    return {
        split: [
            make_row(data_source=source, request=req.text, target=list(req.target), split=split, index=i,
                     qid=req.qid, category=req.category, template=template)
            for i, (source, req) in enumerate(pairs)
        ]
        for split, pairs in splits.items()
    }


def prepare(
    requests_path: str,
    items_path: str,
    out_dir: str,
    template: str = "sparse",
    val_size: int = 1000,
    test_domains: Sequence[str] = DEFAULT_TEST_DOMAINS,
    seed: int = 42,
    max_requests: int | None = None,
    report: BadInputReport | None = None,
) -> dict:
    """Run the whole prep; returns the summary also written to ``out_dir/prep_report.json``."""
    if template not in PROMPT_TEMPLATES:
        raise KeyError(f"unknown --template {template!r}; known: {sorted(PROMPT_TEMPLATES)}")
    report = report if report is not None else BadInputReport()
    require_file(requests_path, "Amazon-C4 requests file")
    require_file(items_path, "Amazon-C4 item pool file")
    domain_matcher(test_domains)  # fail on ambiguous domains before the long read

    categories = load_item_categories(items_path, report)
    requests = load_requests(requests_path, categories, report, max_requests)
    splits = split_requests(requests, test_domains, val_size, seed, prefix=DATA_SOURCE_PREFIX)
    rows = build_rows(splits, template)

    os.makedirs(out_dir, exist_ok=True)
    write_rows(rows["train"], os.path.join(out_dir, "train.parquet"))
    write_rows(rows["val"] + rows["test"], os.path.join(out_dir, "val.parquet"))
    write_rows(rows["test"], os.path.join(out_dir, "test.parquet"))

    sources = Counter(source for pairs in splits.values() for source, _ in pairs)
    summary = {
        "requests": len(requests),
        "items": len(categories),
        "rows": {split: len(r) for split, r in rows.items()},
        "data_sources": dict(sorted(sources.items())),
        "test_domains_without_requests": [
            d for d in test_domains if f"{DATA_SOURCE_PREFIX}_{d}_test" not in sources
        ],
        "categories": dict(Counter(r.category for r in requests).most_common()),
        "bad_input": report.as_dict(),
        "template": template,
        "seed": seed,
    }
    with open(os.path.join(out_dir, "prep_report.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.amazon_c4",
                                     description="Prepare Amazon-C4 parquet files (verl format) for Rec-R1.")
    parser.add_argument("--raw-dir", help=f"folder with {REQUEST_FILE} and {ITEM_FILE} "
                                          "(with --from-hub: where to download them)")
    parser.add_argument("--out-dir", required=True, help="where train/val/test.parquet go")
    parser.add_argument("--template", default="sparse", choices=sorted(PROMPT_TEMPLATES))
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--test-domains", default=",".join(DEFAULT_TEST_DOMAINS),
                        help="comma-separated held-out category domains")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-requests", type=int, default=None, help="use only the first N requests")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad input row")
    parser.add_argument("--from-hub", action="store_true", help=f"download the raw files from {HUB_DATASET}")
    args = parser.parse_args(argv)
    if not args.from_hub and not args.raw_dir:
        parser.error("--raw-dir is required (or use --from-hub)")
    if args.max_requests is not None and args.max_requests < 1:
        parser.error("--max-requests must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    test_domains = [d.strip() for d in args.test_domains.split(",") if d.strip()]
    start = time.perf_counter()
    try:
        if args.from_hub:
            requests_path, items_path = download_from_hub(args.raw_dir)
        else:
            requests_path = os.path.join(args.raw_dir, REQUEST_FILE)
            items_path = os.path.join(args.raw_dir, ITEM_FILE)
        report = BadInputReport(strict=args.strict)
        summary = prepare(requests_path, items_path, args.out_dir, template=args.template, val_size=args.val_size,
                          test_domains=test_domains, seed=args.seed, max_requests=args.max_requests, report=report)
    except (MissingInputError, BadInputError, HubUnreachableError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"prepared {summary['requests']} requests over {summary['items']} items in {seconds:.1f} s "
          f"({summary['requests'] / max(seconds, 1e-9):,.0f} requests/s) -> {args.out_dir}")
    for source, n in summary["data_sources"].items():
        print(f"  {source}: {n}")
    for domain in summary["test_domains_without_requests"]:
        seen = ", ".join(list(summary["categories"])[:12])
        print(f"warning: test domain {domain!r} matched no request; categories seen: {seen}", file=sys.stderr)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
