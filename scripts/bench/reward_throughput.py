"""Throughput of the batched Rec-R1 reward against a per-sample search loop (Rec-R1's way).

    python scripts/bench/reward_throughput.py [--items 20000] [--requests 32] [--samples 12] [--steps 3]

On a synthetic catalog (recr1.data.synthetic, exported with recr1.data.corpus, indexed with
recr1.retrieval.build_lucene; cached in --workdir), one GRPO-shaped step of ``requests x samples``
responses is scored two ways in the same process, on the same JVM and index:

- batched: ``recr1.reward.compute_score_batch`` (one search per unique query, no stored documents
  loaded; one search thread: pyjnius is not thread-safe);
- per-sample loop: for each response, parse it, search with Pyserini's ``LuceneSearcher.search``
  (k hits, BM25 1.2/0.75) and compute NDCG, as Rec-R1's reward did (it even JSON-decoded every
  hit's stored document, which this loop skips, so the baseline here is the faster one).

The queries of a step are variants a policy might write for each request (the oracle keywords,
the start of the request, the oracle with a word dropped or added...), sampled with repeats, plus
a few malformed responses. Both ways must give identical scores. Prints samples per second for
each and their ratio.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time

from recr1.data.corpus import export_item_pool
from recr1.data.item_pool import ITEM_FILE
from recr1.data.synthetic import ORACLE_FILE, REQUEST_FILE, generate_catalog
from recr1.metrics import ndcg_at_k
from recr1.retrieval.build_lucene import build_lucene_index
from recr1.retrieval.java import start_jvm
from recr1.retrieval.searcher import get_searcher
from recr1.reward import FORMAT_BONUS, FORMAT_PENALTY, compute_score_batch, parse_answer


def prepare_index(workdir: str, n_items: int, n_requests: int, seed: int) -> tuple[str, str]:
    """(raw catalog folder, Lucene index folder), generated once and reused from ``workdir``."""
    raw, corpus, index = (os.path.join(workdir, name) for name in ("raw", "corpus", "index"))
    if not os.path.isfile(os.path.join(raw, ORACLE_FILE)):
        generate_catalog(raw, n_items=n_items, n_requests=n_requests, seed=seed)
    if not os.path.isfile(os.path.join(index, "docids.txt")):
        export_item_pool(os.path.join(raw, ITEM_FILE), corpus)
        build_lucene_index(corpus, index, overwrite=True)
    return raw, index


def load_requests(raw: str) -> list[dict]:
    """Requests with their target and oracle query."""
    with open(os.path.join(raw, ORACLE_FILE)) as f:
        oracle = {str(row["qid"]): row for row in map(json.loads, f)}
    with open(os.path.join(raw, REQUEST_FILE), newline="") as f:
        return [{"request": row["query"], "target": row["item_id"], "oracle": oracle[str(row["qid"])]["query"]}
                for row in csv.DictReader(f)]  # fmt: skip


def query_variants(request: dict, rng: random.Random) -> list[str]:
    """Queries a policy might write for one request: the oracle keywords, with a word dropped,
    added or reordered, mixed with words of the request, or the start of the request itself."""
    oracle, words = request["oracle"].split(), request["request"].split()
    variants = [" ".join(oracle), " ".join(rng.sample(oracle, len(oracle)))]
    variants += [" ".join(oracle[:i] + oracle[i + 1 :]) for i in range(len(oracle))]
    variants += [" ".join(oracle + rng.sample(words, 2)) for _ in range(3)]
    variants += [" ".join(words[:n]) for n in (8, 12, 16, 24, 32)] + [request["request"]]
    return [v for v in dict.fromkeys(variants) if v.strip()]


def grpo_step(requests: list[dict], n_samples: int, rng: random.Random) -> tuple[list[str], list[dict]]:
    """Responses and ground truths for one step: each request's samples drawn from its variants."""
    responses, truths = [], []
    for request in requests:
        variants = query_variants(request, rng)
        weights = [1.0 / (i + 1) ** 0.3 for i in range(len(variants))]  # the policy prefers a few queries
        for _ in range(n_samples):
            if rng.random() < 0.04:
                responses.append("<think>hmm</think> I would search for " + variants[0])  # malformed
            else:
                query = rng.choices(variants, weights)[0]
                responses.append(f"<think>pick the product words</think><answer>{json.dumps({'query': query})}</answer>")
            truths.append({"target": [request["target"]]})
    return responses, truths


def per_sample_loop(search, responses: list[str], truths: list[dict], k: int) -> list[float]:
    """Rec-R1's reward loop: parse, search, score, one sample at a time. ``search(query, k)`` -> ids."""
    scores = []
    for response, truth in zip(responses, truths):
        parsed = parse_answer(response)
        if not parsed.format_ok:
            scores.append(FORMAT_PENALTY)
            continue
        ndcg = ndcg_at_k(search(parsed.query, k) if parsed.query.strip() else [], truth["target"], k)
        scores.append(FORMAT_BONUS + ndcg if ndcg > 0 else 0.0)
    return scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20000, help="catalog size")
    parser.add_argument("--requests", type=int, default=32, help="prompts per step")
    parser.add_argument("--samples", type=int, default=12, help="responses per prompt (rollout.n)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per method (median reported)")
    parser.add_argument("--k", type=int, default=1000, help="NDCG cut-off (Rec-R1 trains with 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "recr1-bench-reward"))
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    raw, index = prepare_index(args.workdir, args.items, max(500, args.requests * (args.steps + 1)), args.seed)
    requests = load_requests(raw)
    rng = random.Random(args.seed)
    steps = [grpo_step(rng.sample(requests, args.requests), args.samples, rng) for _ in range(args.steps + 1)]
    n = args.requests * args.samples

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher as PyseriniSearcher

    pyserini_searcher = PyseriniSearcher(index)
    pyserini_searcher.set_bm25(1.2, 0.75)
    searcher = get_searcher("bm25", index, cache_size=0)  # time the search itself, not the query cache
    sources = ["amazon_c4_train"] * n

    def batched(responses, truths):
        return [r["score"] for r in compute_score_batch(sources, responses, truths, searcher=searcher,
                                                        k_train=args.k)]  # fmt: skip

    ways = {
        "batched": batched,
        "per_sample": lambda r, t: per_sample_loop(
            lambda q, k: [hit.docid for hit in pyserini_searcher.search(q, k)], r, t, args.k),
        # where the gain comes from: the fast searcher, one search per sample
        "per_sample_fast_searcher": lambda r, t: per_sample_loop(
            lambda q, k: [doc_id for doc_id, _ in searcher.search(q, k)], r, t, args.k),
    }  # fmt: skip
    times = {name: [] for name in ways}
    unique, max_diff = [], 0.0
    for step, (responses, truths) in enumerate(steps):  # step 0 warms up (JIT, caches)
        scores = {}
        for name, way in ways.items():
            t0 = time.perf_counter()
            scores[name] = way(responses, truths)
            if step > 0:
                times[name].append(time.perf_counter() - t0)
        max_diff = max(max_diff, *(abs(a - b) for name in ways for a, b in zip(scores[name], scores["batched"])))
        if step > 0:
            unique.append(len({p.query for p in map(parse_answer, responses) if p.format_ok}))
    if max_diff > 1e-9:
        sys.exit(f"the ways of scoring disagree (max |diff| {max_diff})")

    qps = {name: n / statistics.median(ts) for name, ts in times.items()}
    result = {
        "items": searcher.num_docs, "samples_per_step": n, "unique_queries_per_step": unique, "k": args.k,
        "steps": args.steps,
        "samples_per_s": {name: round(v, 1) for name, v in qps.items()},
        "speedup": round(qps["batched"] / qps["per_sample"], 2), "max_score_diff": max_diff,
        "step_seconds": {name: [round(t, 3) for t in ts] for name, ts in times.items()},
        "searcher_stats": dict(searcher.stats),
    }  # fmt: skip
    print(f"catalog {result['items']} items, step {args.requests} x {args.samples} = {n} responses "
          f"({statistics.mean(unique):.0f} unique queries), k={args.k}")
    print(f"  batched compute_score_batch : {qps['batched']:8.1f} samples/s  (step {min(times['batched']):.2f} s)")
    print(f"  per-sample Pyserini loop    : {qps['per_sample']:8.1f} samples/s  (step {min(times['per_sample']):.2f} s)")
    print(f"  (per-sample, fast searcher  : {qps['per_sample_fast_searcher']:8.1f} samples/s: every sample searched)")
    print(f"  speedup                     : {result['speedup']:.2f}x   (scores identical: max |diff| {max_diff:.1e})")
    print(f"  searcher events: {dict(searcher.stats)}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
