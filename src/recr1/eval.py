"""Evaluate query rewriting: generate a query per request, retrieve, score per domain.

    python -m recr1.eval --data data/amazon_c4/test.parquet --index data/index/lucene --retriever bm25 \
        [--model CHECKPOINT_DIR] [--engine hf|vllm] --out outputs/eval/run1
    python -m recr1.eval --data ... --retriever remote --url http://cpu-node:8000 --out ...  # recr1.retrieval.serve

Without ``--model`` a baseline query is used: the raw request itself (``--baseline request``), or for
sequential recommendation the title of the last item of the history (``--baseline last_title``).
With a model, each prompt
is answered exactly as the training rollout answers it (:mod:`recr1.generate`: the HF rollout's
sampling loop, or the vLLM rollout with ``--engine vllm``; greedy unless ``--do-sample``; the
checkpoint's generation_config sampling defaults, e.g. a repetition penalty, are not applied; every
EOS id of the model ends a response), and the query is read from the last ``<answer>`` exactly as
the reward reads it (:func:`recr1.reward.parse_answer`); a response without a usable query
retrieves nothing and scores 0.

Prints a table per data source (NDCG@10, NDCG@100, Recall@100, MRR@100, format-ok rate) and writes
``requests.jsonl`` (one line per request), ``metrics.md`` and ``metrics.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np

from recr1.generate import ENGINES, Sampling, generate
from recr1.metrics import first_ranks, retrieval_metrics
from recr1.reward import parse_answer, targets_from_ground_truth
from recr1.retrieval.remote_searcher import RemoteSearchError
from recr1.retrieval.searcher import RETRIEVER_KINDS, load_searcher

EVAL_K = 100
REQUIRED_COLUMNS = ("data_source", "reward_model")
TABLE_COLUMNS = (("n", "n"), ("ndcg@10", "NDCG@10"), ("ndcg@100", "NDCG@100"), ("recall@100", "Recall@100"),
                 ("mrr", "MRR@100"), ("format_ok", "format-ok"))  # fmt: skip


# ---- reading the data ---------------------------------------------------------------------------


def _plain(value):
    """Parquet structs/lists come back as dicts and numpy arrays; make them plain Python."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def load_requests(path: str, limit: int | None = None) -> list[dict]:
    """Rows of a prepared parquet file as dicts with data_source, prompt, request, targets, extra_info."""
    import pandas as pd

    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path}")
    frame = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    if limit is not None:
        frame = frame.iloc[:limit]
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        record = {k: _plain(v) for k, v in record.items()}
        reward_model = record["reward_model"] or {}
        extra = record.get("extra_info") or {}
        prompt = record.get("prompt")
        request = record.get("request") or extra.get("request")
        if request is None and prompt:
            request = next((m.get("content") for m in reversed(prompt) if m.get("role") == "user"), None)
        rows.append(
            {
                "row": i,
                "data_source": str(record["data_source"]),
                "prompt": prompt,
                "request": request or "",
                "targets": targets_from_ground_truth(reward_model.get("ground_truth"), f"{path}, row {i}"),
                "extra_info": extra,
            }
        )
    return rows


BASELINES = ("request", "last_title")


def baseline_query(row: dict, baseline: str = "request") -> str:
    """The no-model query of a loaded row: its request, or the last history item's title (``last_title``).

    Raises ValueError naming the row when ``last_title`` meets a row without ``extra_info.history_titles``.
    """
    if baseline == "request":
        return row["request"]
    if baseline != "last_title":
        raise ValueError(f"unknown baseline {baseline!r}; known: {BASELINES}")
    titles = (row.get("extra_info") or {}).get("history_titles")
    if not titles:
        raise ValueError(f"row {row['row']} ({row['data_source']}): the last_title baseline needs "
                         f"extra_info.history_titles (a sequential-recommendation file, recr1.data.amazon_review)")
    return str(titles[-1])


# ---- scoring ------------------------------------------------------------------------------------


def score_request(ranked_ids: list[str], targets: list[str]) -> dict:
    """Per-request metrics for a ranking cut at EVAL_K (:func:`recr1.metrics.retrieval_metrics`, which validation
    logs too) and the best target's rank."""
    ranks = first_ranks(ranked_ids, targets, EVAL_K)
    return {**retrieval_metrics(ranked_ids, targets, EVAL_K), "rank": min(ranks.values()) if ranks else None}


def summarize(records: list[dict]) -> dict[str, dict]:
    """``{data_source: {n, ndcg@10, ndcg@100, recall@100, mrr, format_ok}}`` plus an "all" row (means)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["data_source"]].append(r)
    table = {}
    for name, group in sorted(groups.items()) + ([("all", records)] if len(groups) > 1 else []):
        fmt = [r["format_ok"] for r in group if r["format_ok"] is not None]
        table[name] = {
            "n": len(group),
            **{m: float(np.mean([r[m] for r in group])) for m in ("ndcg@10", "ndcg@100", "recall@100", "mrr")},
            "format_ok": float(np.mean(fmt)) if fmt else None,
        }
    return table


def markdown_table(table: dict[str, dict]) -> str:
    """The summary as a markdown table (format-ok shows "-" for the no-model baseline)."""
    lines = ["| domain | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
             "|---|" + "---:|" * len(TABLE_COLUMNS)]  # fmt: skip
    for name, row in table.items():
        cells = []
        for key, _ in TABLE_COLUMNS:
            value = row[key]
            cells.append("-" if value is None else str(value) if key == "n" else f"{value:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(
    data: str,
    index: str,
    retriever: str,
    out: str,
    model: str | None = None,
    engine: str = "hf",
    max_new_tokens: int = 512,
    batch_size: int = 16,
    limit: int | None = None,
    device: str | None = None,
    searcher_settings: dict | None = None,
    sampling: Sampling | None = None,
    baseline: str = "request",
) -> dict[str, dict]:
    """Run the evaluation and write its files; returns the summary table (see :func:`summarize`). Responses are
    generated as the training rollout generates them (:func:`recr1.generate.generate`; greedy unless ``sampling``
    says otherwise)."""
    t0 = time.time()
    rows = load_requests(data, limit)
    if not rows:
        raise ValueError(f"{data} has no rows")
    print(f"[eval] {len(rows)} requests from {data}")
    if model is None:
        responses = [None] * len(rows)
        queries = [baseline_query(r, baseline) for r in rows]
        formats = [(None, "baseline")] * len(rows)
    else:
        prompts = [r["prompt"] for r in rows]
        if any(p is None for p in prompts):
            raise ValueError(f"{data}: --model needs a 'prompt' column with chat messages")
        responses = generate(model, prompts, engine, max_new_tokens, batch_size, device, sampling).texts
        parsed = [parse_answer(text) for text in responses]
        queries = [p.query or "" for p in parsed]
        formats = [(p.format_ok, p.reason) for p in parsed]

    searcher = load_searcher(retriever, index, **(searcher_settings or {}))
    if retriever == "remote":  # the server's index, named by the server
        index = f"{searcher.index} ({searcher.retriever}, served at {searcher.url})"
    hits = searcher.batch_search(queries, EVAL_K)
    os.makedirs(out, exist_ok=True)
    records = []
    with open(os.path.join(out, "requests.jsonl"), "w") as f:
        for row, query, response, (format_ok, reason), row_hits in zip(rows, queries, responses, formats, hits):
            ranked = [doc_id for doc_id, _ in row_hits]
            record = {
                "row": row["row"], "data_source": row["data_source"], "qid": row["extra_info"].get("qid"),
                "query": query, "format_ok": format_ok, "reason": reason, "targets": row["targets"],
                **score_request(ranked, row["targets"]), "top10": ranked[:10], "response": response,
            }  # fmt: skip
            records.append(record)
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    table = summarize(records)
    text = markdown_table(table)
    with open(os.path.join(out, "metrics.md"), "w") as f:
        what = f"model {model}" if model else "raw request as query" if baseline == "request" \
            else f"{baseline} as query"
        f.write(f"{what}; {retriever} index {index}\n\n{text}\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"data": data, "index": index, "retriever": retriever, "model": model,
                   "baseline": None if model else baseline, "table": table,
                   "searcher_stats": dict(searcher.stats)}, f, indent=2)  # fmt: skip
    print(text)
    print(f"[eval] wrote {out}/requests.jsonl, metrics.md, metrics.json in {time.time() - t0:.1f}s")
    searcher.close()
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared parquet file (verl row schema)")
    parser.add_argument("--index", default=None, help="Lucene or dense index folder (bm25, dense)")
    parser.add_argument("--retriever", required=True, choices=RETRIEVER_KINDS)
    parser.add_argument("--url", default=None, help="with --retriever remote: a python -m recr1.retrieval.serve server")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default=None, help="checkpoint folder (HF format); omit for the raw-request baseline")
    parser.add_argument("--baseline", default="request", choices=BASELINES,
                        help="the no-model query: the request, or the last history item's title (seqrec)")
    parser.add_argument("--engine", default="hf", choices=ENGINES, help="generation engine (both as in training)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding (the default)")
    parser.add_argument("--temperature", type=float, default=1.0, help="with --do-sample")
    parser.add_argument("--top-k", type=int, default=-1, help="with --do-sample; <= 0 disables")
    parser.add_argument("--top-p", type=float, default=1.0, help="with --do-sample; 1 disables")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generation batch (hf)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    parser.add_argument("--device", default=None, help="torch device for generation (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="search threads")
    parser.add_argument("--jvm-heap", default=None, help="JVM max heap for BM25, e.g. 2g")
    parser.add_argument("--query-syntax", default="bow", choices=("bow", "lucene"), help="BM25 query syntax")
    parser.add_argument("--rec-r1-compat", action="store_true", help="wrap BM25 queries as Rec-R1 did (loses a word)")
    args = parser.parse_args(argv)
    settings: dict = {"threads": args.threads}
    if args.retriever == "bm25":
        settings.update(jvm_heap=args.jvm_heap, query_syntax=args.query_syntax, rec_r1_compat=args.rec_r1_compat)
    if args.retriever == "remote":
        searcher_flags = [f for f, on in (("--index", args.index), ("--threads", args.threads), ("--jvm-heap",
                          args.jvm_heap), ("--query-syntax", args.query_syntax != "bow"), ("--rec-r1-compat",
                          args.rec_r1_compat)) if on]  # fmt: skip
        if not args.url or searcher_flags:
            parser.error(f"--retriever remote takes --url and none of {searcher_flags or ['--index', '...']} (the "
                         f"server's own flags)")
        settings = {"url": args.url}
    elif args.index is None or args.url is not None:
        parser.error(f"--retriever {args.retriever} needs --index (and no --url)")
    try:
        sampling = Sampling(args.do_sample, args.temperature, args.top_k, args.top_p)
        evaluate(args.data, args.index, args.retriever, args.out, args.model, args.engine, args.max_new_tokens,
                 args.batch_size, args.limit, args.device, settings, sampling, args.baseline)  # fmt: skip
    except (FileNotFoundError, ValueError, ImportError, RemoteSearchError) as exc:
        sys.exit(f"eval: {exc}")


if __name__ == "__main__":
    main()
