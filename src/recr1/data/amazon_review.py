"""Prepare one category of Amazon Reviews 2023 for Rec-R1's sequential recommendation task.

    python -m recr1.data.amazon_review --raw-dir data/amazon_review/raw --category All_Beauty \\
        --out-dir data/amazon_review/All_Beauty [--min-history 1] [--max-history 10] \\
        [--inductive-fraction 0.1] [--max-eval-rows 1000] [--seed 42] [--template seqrec] [--strict]

Reads ``<Category>.jsonl[.gz]`` (reviews) and ``meta_<Category>.jsonl[.gz]`` (items) from ``--raw-dir``
(the McAuley lab's files, real field names: see :mod:`recr1.data.amazon_review_raw`), builds each user's
purchase sequence and its leave-last-out examples (:mod:`recr1.data.histories`), and writes:

* ``train.parquet``: ``amazon_review_<Category>_train`` rows;
* ``val.parquet``: ``amazon_review_<Category>_val`` + ``_inductive_val`` + both test sources (validation
  then reports every one, as the Amazon-C4 prep does);
* ``test.parquet``: ``amazon_review_<Category>_test`` (users seen in training, their last item) and
  ``amazon_review_<Category>_inductive_test`` (held-out users);
* ``corpus/part-*.jsonl``: every item as ``{"id": parent_asin, "contents": title + features + description}``
  for ``scripts/data/build_index.sh``;
* ``prep_report.json``: counts and the bad-input report (file and line of every skipped row kind).

Each row's prompt shows the titles of the last ``--max-history`` items bought before the target; the target
is one parent_asin. Val/test sources hold at most ``--max-eval-rows`` rows each (a seeded sample; Rec-R1
used 1000).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

from recr1.data.amazon_review_raw import iter_meta, iter_reviews, raw_paths
from recr1.data.bad_input import BadInputError, BadInputReport, MissingInputError
from recr1.data.corpus import DEFAULT_SHARD_SIZE, write_corpus
from recr1.data.histories import SPLITS, Example, split_sequences, user_sequences
from recr1.data.prompts import PROMPT_TEMPLATES
from recr1.data.records import make_seqrec_row, write_seqrec_rows

DATA_SOURCE_PREFIX = "amazon_review"


def data_source(category: str, split: str) -> str:
    """``amazon_review_<Category>_<split>`` (split: train, val, test, inductive_val, inductive_test)."""
    return f"{DATA_SOURCE_PREFIX}_{category}_{split}"


def cap_rows(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples, a seeded sample kept in input order (None or 0: all)."""
    if not limit or len(examples) <= limit:
        return examples
    keep = set(random.Random(seed).sample(range(len(examples)), limit))
    return [e for i, e in enumerate(examples) if i in keep]


def build_rows(splits: dict[str, list[Example]], category: str, titles: dict[str, str],
               template: str) -> dict[str, list[dict]]:
    """Prepared rows per split; ``extra_info.index`` is the position within the split's data source."""
    return {
        split: [
            make_seqrec_row(data_source=data_source(category, split), history=list(e.history),
                            history_titles=[titles[i] for i in e.history], target=e.target, split=split,
                            index=i, user_id=e.user_id, category=category, template=template)
            for i, e in enumerate(examples)
        ]
        for split, examples in splits.items()
    }


def prepare(raw_dir: str, category: str, out_dir: str, min_history: int = 1, max_history: int = 10,
            inductive_fraction: float = 0.1, max_eval_rows: int | None = 1000, seed: int = 42,
            template: str = "seqrec", shard_size: int = DEFAULT_SHARD_SIZE,
            report: BadInputReport | None = None) -> dict:
    """Run the whole prep; returns the summary also written to ``out_dir/prep_report.json``."""
    if template not in PROMPT_TEMPLATES:
        raise KeyError(f"unknown --template {template!r}; known: {sorted(PROMPT_TEMPLATES)}")
    report = report if report is not None else BadInputReport()
    reviews_path, meta_path = raw_paths(raw_dir, category)
    items = list(iter_meta(meta_path, report))
    titles = {it.item_id: it.title for it in items}
    reviews = list(iter_reviews(reviews_path, set(titles), report))
    sequences, repeats = user_sequences(reviews)
    splits = split_sequences(sequences, min_history, max_history, inductive_fraction, seed)
    splits = {name: ex if name == "train" else cap_rows(ex, max_eval_rows, seed) for name, ex in splits.items()}
    if not splits["train"]:
        raise ValueError(f"{reviews_path}: no training example (users need more than {min_history + 2} distinct "
                         f"items); lower --min-history or check the file")
    rows = build_rows(splits, category, titles, template)

    os.makedirs(out_dir, exist_ok=True)
    evals = rows["val"] + rows["inductive_val"] + rows["test"] + rows["inductive_test"]
    write_seqrec_rows(rows["train"], os.path.join(out_dir, "train.parquet"))
    write_seqrec_rows(evals, os.path.join(out_dir, "val.parquet"))
    write_seqrec_rows(rows["test"] + rows["inductive_test"], os.path.join(out_dir, "test.parquet"))
    shards, n_docs = write_corpus(((it.item_id, it.text) for it in items), os.path.join(out_dir, "corpus"),
                                  shard_size=shard_size, total=len(items), desc="export items")
    lengths = [len(seq) for seq in sequences.values()]
    summary = {
        "category": category,
        "reviews": len(reviews),
        "items": n_docs,
        "corpus_shards": len(shards),
        "users": len(sequences),
        "users_with_examples": len({e.user_id for ex in splits.values() for e in ex}),
        "repeat_purchases_dropped": repeats,
        "mean_sequence_length": round(sum(lengths) / max(1, len(lengths)), 2),
        "rows": {name: len(rows[name]) for name in SPLITS},
        "data_sources": {data_source(category, name): len(rows[name]) for name in SPLITS},
        "bad_input": report.as_dict(),
        "min_history": min_history, "max_history": max_history, "inductive_fraction": inductive_fraction,
        "max_eval_rows": max_eval_rows, "template": template, "seed": seed,
    }
    with open(os.path.join(out_dir, "prep_report.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.amazon_review",
                                     description="Prepare an Amazon Reviews 2023 category (verl parquet + corpus) "
                                                 "for Rec-R1's sequential recommendation.")
    parser.add_argument("--raw-dir", required=True, help="folder with <Category>.jsonl[.gz] and meta_<Category>...")
    parser.add_argument("--category", required=True, help="e.g. All_Beauty (the file names' stem)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--min-history", type=int, default=1, help="fewest items a history must hold")
    parser.add_argument("--max-history", type=int, default=10, help="items shown in a prompt (the latest)")
    parser.add_argument("--inductive-fraction", type=float, default=0.1, help="share of users held out of training")
    parser.add_argument("--max-eval-rows", type=int, default=1000, help="rows per val/test source (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--template", default="seqrec", choices=sorted(PROMPT_TEMPLATES))
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--strict", action="store_true", help="stop at the first bad input row")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = BadInputReport(strict=args.strict)
    try:
        summary = prepare(args.raw_dir, args.category, args.out_dir, args.min_history, args.max_history,
                          args.inductive_fraction, args.max_eval_rows, args.seed, args.template, args.shard_size,
                          report)
    except (MissingInputError, BadInputError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"prepared {summary['reviews']} reviews of {summary['users']} users over {summary['items']} items in "
          f"{time.perf_counter() - start:.1f} s -> {args.out_dir}")
    for source, n in summary["data_sources"].items():
        print(f"  {source}: {n}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
