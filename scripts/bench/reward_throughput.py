"""Throughput of the batched Rec-R1 reward: per-sample loop (Rec-R1's way), one searcher, several searcher processes.

    python scripts/bench/reward_throughput.py [--items 20000] [--requests 32] [--samples 12] [--steps 3]
    python scripts/bench/reward_throughput.py --items 1000000 --workers 1,2 [--long-queries] [--skip-per-sample]

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
a few malformed responses; with ``--long-queries`` every query is a 60-150 term expansion (the
request's and the target's words, repeated), as RL policies learn to write. All ways must give
identical scores. Prints samples per second for each and their ratios.

``--workers 1,2,...`` times the batched reward with ``reward_kwargs.num_workers`` = each count
(1: the searcher in this process; N > 1: a pool of N searcher processes, each with its own JVM,
recr1.retrieval.searcher_pool) and prints the ratio to 1 worker. The catalog, its requests and the
index are built once in --workdir (one folder per catalog size and seed) and the build time is
printed; on 2 cores a 1,000,000-item catalog takes minutes to generate and index.

``--server`` also times the reward through the retrieval server (``python -m recr1.retrieval.serve`` started on
the same index as a child process, uncached, with a RemoteSearcher here) and prints its step time as a ratio to
the in-process searcher's (the target: within 1.5x at 384 responses per call).
"""
from __future__ import annotations

import argparse
import atexit
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
from recr1.retrieval.searcher import Searcher, get_searcher
from recr1.reward import FORMAT_BONUS, FORMAT_PENALTY, compute_score_batch, parse_answer

CATALOG_META = "bench_catalog.json"
LONG_QUERY_TERMS = (60, 150)


def prepare_index(workdir: str, n_items: int, n_requests: int, seed: int) -> tuple[str, str, dict]:
    """(raw catalog folder, Lucene index folder, seconds spent building each part now), generated once in
    ``workdir`` and reused while it holds the same catalog (items and seed; at least ``n_requests`` requests)."""
    raw, corpus, index = (os.path.join(workdir, name) for name in ("raw", "corpus", "index"))
    meta_path = os.path.join(workdir, CATALOG_META)
    meta = {}
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    same_items = meta.get("items") == n_items and meta.get("seed") == seed
    built = {}
    if not (same_items and meta.get("requests", 0) >= n_requests and os.path.isfile(os.path.join(raw, ORACLE_FILE))):
        t0 = time.perf_counter()
        generate_catalog(raw, n_items=n_items, n_requests=n_requests, seed=seed)  # items depend on (items, seed) only
        built["generate_s"] = round(time.perf_counter() - t0, 1)
        meta.update(requests=n_requests)
    if not (same_items and os.path.isfile(os.path.join(index, "docids.txt"))):
        t0 = time.perf_counter()
        export_item_pool(os.path.join(raw, ITEM_FILE), corpus)
        built["export_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        build_lucene_index(corpus, index, overwrite=True)
        built["index_s"] = round(time.perf_counter() - t0, 1)
    os.makedirs(workdir, exist_ok=True)
    with open(meta_path, "w") as f:
        json.dump({**meta, "items": n_items, "seed": seed}, f)
    return raw, index, built


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


def long_query_variants(request: dict, rng: random.Random, n: int = 8) -> list[str]:
    """``n`` expansions of 60-150 terms: the oracle keywords, then the request's and the oracle's words drawn with
    repeats (a policy that learned that BM25 rewards repeated attribute words writes such queries)."""
    oracle, words = request["oracle"].split(), request["request"].split()
    pool = oracle * 3 + words
    return list(dict.fromkeys(
        " ".join(oracle + rng.choices(pool, k=rng.randint(*LONG_QUERY_TERMS) - len(oracle))) for _ in range(n)))


def grpo_step(requests: list[dict], n_samples: int, rng: random.Random,
              long_queries: bool = False) -> tuple[list[str], list[dict]]:
    """Responses and ground truths for one step: each request's samples drawn from its variants."""
    responses, truths = [], []
    for request in requests:
        variants = long_query_variants(request, rng) if long_queries else query_variants(request, rng)
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


def batched_way(searcher: Searcher, n: int, k: int):
    """The reward as the trainer calls it (``compute_score_batch``) on ``searcher``: responses, truths -> scores."""
    sources = ["amazon_c4_train"] * n

    def score(responses, truths):
        return [r["score"] for r in compute_score_batch(sources, responses, truths, searcher=searcher, k_train=k)]

    return score


def worker_ways(index: str, worker_counts: list[int], n: int, k: int) -> tuple[dict, dict, dict]:
    """({"workers_N": way}, {"workers_N": searcher}, {"workers_N": seconds to start}) for each worker count: the
    uncached searcher with ``num_workers`` = N (1: in this process; N > 1: a pool of N processes)."""
    ways, searchers, start_s = {}, {}, {}
    for workers in worker_counts:
        name = f"workers_{workers}"
        t0 = time.perf_counter()
        searchers[name] = get_searcher("bm25", index, cache_size=0, num_workers=workers)  # time search, not the cache
        start_s[name] = round(time.perf_counter() - t0, 2)
        ways[name] = batched_way(searchers[name], n, k)
    return ways, searchers, start_s


def per_sample_ways(index: str, fast_searcher: Searcher, k: int) -> dict:
    """Rec-R1's per-sample loop with Pyserini's searcher, and (where the gain comes from) with the fast searcher."""
    start_jvm()
    from pyserini.search.lucene import LuceneSearcher as PyseriniSearcher

    pyserini_searcher = PyseriniSearcher(index)
    pyserini_searcher.set_bm25(1.2, 0.75)
    return {
        "per_sample": lambda r, t: per_sample_loop(
            lambda q, kk: [hit.docid for hit in pyserini_searcher.search(q, kk)], r, t, k),
        "per_sample_fast_searcher": lambda r, t: per_sample_loop(
            lambda q, kk: [doc_id for doc_id, _ in fast_searcher.search(q, kk)], r, t, k),
    }  # fmt: skip


def server_way(index: str, n: int, k: int):
    """The reward through the retrieval server: ``python -m recr1.retrieval.serve`` on the same index (its own JVM,
    no query cache, like the in-process baseline) and a RemoteSearcher here; the server stops when this exits."""
    from recr1.retrieval.remote_searcher import RemoteSearcher
    from recr1.retrieval.server_process import ServerProcess

    t0 = time.perf_counter()
    server = ServerProcess(index, "bm25", log_path=os.path.join(os.path.dirname(index), "serve.log"),
                           args=["--cache-size", "0"]).start()  # fmt: skip
    atexit.register(server.stop)
    print(f"retrieval server at {server.url} ready in {time.perf_counter() - t0:.1f} s", flush=True)
    remote = RemoteSearcher(server.url)
    way = batched_way(remote, n, k)
    way.searcher, way.pids = remote, lambda: [server.process.pid]  # for server_summary and the CPU columns
    return way


def server_summary(runs: dict, remote) -> dict:
    """Print and return the server path against the in-process searcher (``workers_1``) of the same steps: wall
    time ratio, CPU ratio (client + server process CPU vs the in-process driver's, which hardly depends on the
    machine's load), and where the server path's time went (the server's Server-Timing header, the client's
    timings; summed over every step, warm-up included)."""
    wall = statistics.median(runs["server"]["wall"]) / statistics.median(runs["workers_1"]["wall"])
    cpu = critical_path_cpu(runs["server"]) / critical_path_cpu(runs["workers_1"])
    spent = remote.timings
    parts = {"server search": spent["server_search"], "server encode": spent["server_encode"],
             "transfer + HTTP": spent["request"] - spent["server_search"] - spent["server_encode"],
             "client decode": spent["decode"]}  # fmt: skip
    print(f"  server path: step time {wall:.2f}x the in-process searcher's, CPU {cpu:.2f}x (target <= 1.5x); "
          + ", ".join(f"{name} {100 * v / sum(parts.values()):.0f}%" for name, v in parts.items()))
    return {"wall_ratio_to_in_process": round(wall, 2), "cpu_ratio_to_in_process": round(cpu, 2),
            "time_split_s": {name: round(v, 3) for name, v in parts.items()}}


def other_ways(args, index: str, n: int) -> dict:
    """More ways of scoring the same steps, timed against the same baseline: with ``--server``, the reward through
    the retrieval server (:func:`server_way`)."""
    return {"server": server_way(index, n, args.k)} if args.server else {}


def parse_worker_counts(text: str) -> list[int]:
    """"1,2,4" -> [1, 2, 4] (1 always first: the baseline of the ratios)."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"--workers {text!r}: expected whole numbers separated by commas, e.g. 1,2") from None
    if not counts or counts[0] < 1:
        raise SystemExit(f"--workers {text!r}: every count must be >= 1")
    return sorted(set(counts) | {1})


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_ways(ways: dict, steps: list, worker_pids: dict, warmup: int = 1) -> tuple[dict, list, float]:
    """Run every way on every step (the first ``warmup`` steps untimed: JIT, caches; the per-sample loops only on
    the last of them; the order of the ways rotates each step so none always runs first).

    Besides wall time, each step records the CPU seconds the driver used and those each of the way's worker
    processes used (``worker_pids[name]()`` -> pids). On a shared machine the wall time depends on what else runs;
    the CPU seconds hardly do, and ``driver + busiest worker`` is how long the step would take with a core per
    process (the driver waits while the workers search).

    Returns:
        ({way: {"wall": [s], "driver_cpu": [s], "worker_cpu": [[s per worker]]}}, unique queries per timed step,
        max |score difference| between the ways).
    """
    names = list(ways)
    runs = {name: {"wall": [], "driver_cpu": [], "worker_cpu": []} for name in names}
    unique, max_diff = [], 0.0
    for step, (responses, truths) in enumerate(steps):
        order = names[step % len(names):] + names[: step % len(names)]
        if step < warmup - 1:
            order = [name for name in order if not name.startswith("per_sample")]
        scores = {}
        for name in order:
            pids = worker_pids.get(name, lambda: [])()
            workers_before = [process_cpu_seconds(pid) for pid in pids]
            cpu0, t0 = time.process_time(), time.perf_counter()
            scores[name] = ways[name](responses, truths)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if step >= warmup:
                runs[name]["wall"].append(wall)
                runs[name]["driver_cpu"].append(cpu)
                runs[name]["worker_cpu"].append([process_cpu_seconds(pid) - before
                                                 for pid, before in zip(pids, workers_before)])
        reference = scores[names[0]]
        max_diff = max(max_diff, *(abs(a - b) for name in order for a, b in zip(scores[name], reference)))
        if step >= warmup:
            unique.append(len({p.query for p in map(parse_answer, responses) if p.format_ok}))
        if step >= warmup:
            walls = ", ".join(f"{name} {runs[name]['wall'][-1]:.2f} s" for name in names)
            print(f"  step {step - warmup + 1}: {walls}", flush=True)
    return runs, unique, max_diff


def critical_path_cpu(run: dict) -> float:
    """Median over steps of driver CPU + the busiest worker's CPU (seconds): the step time with a core per process."""
    return statistics.median(d + max(w, default=0.0) for d, w in zip(run["driver_cpu"], run["worker_cpu"]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20000, help="catalog size")
    parser.add_argument("--requests", type=int, default=32, help="prompts per step")
    parser.add_argument("--samples", type=int, default=12, help="responses per prompt (rollout.n)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per method (median reported)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first: a JVM compiles its hot code over "
                        "~10 steps' worth of queries (each of N workers sees 1/N of them) and a trainer runs hundreds "
                        "of steps (the per-sample loops warm up on the last one only)")
    parser.add_argument("--k", type=int, default=1000, help="NDCG cut-off (Rec-R1 trains with 1000)")
    parser.add_argument("--workers", default="1", help="searcher process counts to time, e.g. 1,2 (reward_kwargs."
                        "num_workers; 1 = the searcher in this process, the baseline of the ratios)")
    parser.add_argument("--long-queries", action="store_true", help="every query 60-150 terms")
    parser.add_argument("--server", action="store_true", help="also time the reward through the retrieval server "
                        "(python -m recr1.retrieval.serve on the same index, RemoteSearcher)")
    parser.add_argument("--skip-per-sample", action="store_true", help="time only the batched reward (the "
                        "per-sample Pyserini loop takes ~10 s a step on a 1M catalog)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where the catalog and index are built once (default: "
                        "<tmp>/recr1-bench-reward-<items>-seed<seed>)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    worker_counts = parse_worker_counts(args.workers)
    workdir = args.workdir or os.path.join(tempfile.gettempdir(), f"recr1-bench-reward-{args.items}-seed{args.seed}")

    t0 = time.perf_counter()
    n_requests = max(500, args.requests * (args.warmup + args.steps))
    raw, index, built = prepare_index(workdir, args.items, n_requests, args.seed)
    print(f"catalog and index in {workdir}: " + (f"built now in {time.perf_counter() - t0:.0f} s {built}"
                                                  if built else "reused"), flush=True)
    requests = load_requests(raw)
    rng = random.Random(args.seed)
    steps = [grpo_step(rng.sample(requests, args.requests), args.samples, rng, args.long_queries)
             for _ in range(args.warmup + args.steps)]  # fmt: skip
    n = args.requests * args.samples

    ways, searchers, start_s = worker_ways(index, worker_counts, n, args.k)
    searcher = searchers["workers_1"]
    worker_pids = {name: (lambda s=s: [p for p in getattr(s, "worker_pids", [])]) for name, s in searchers.items()}
    if not args.skip_per_sample:
        ways.update(per_sample_ways(index, searcher, args.k))
    ways.update(other_ways(args, index, n))
    worker_pids.update({name: way.pids for name, way in ways.items() if hasattr(way, "pids")})
    runs, unique, max_diff = time_ways(ways, steps, worker_pids, args.warmup)
    if max_diff > 1e-9:
        sys.exit(f"the ways of scoring disagree (max |diff| {max_diff})")

    qps = {name: n / statistics.median(run["wall"]) for name, run in runs.items()}
    cpu_qps = {name: n / critical_path_cpu(runs[name]) for name in searchers}
    by_workers = {w: f"workers_{w}" for w in worker_counts}
    result = {
        "items": searcher.num_docs, "samples_per_step": n, "unique_queries_per_step": unique, "k": args.k,
        "steps": args.steps, "long_queries": args.long_queries, "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "build_seconds": built,
        "samples_per_s": {name: round(v, 1) for name, v in qps.items()},
        "workers": {w: {"samples_per_s": round(qps[name], 1), "ratio_to_1": round(qps[name] / qps["workers_1"], 2),
                        "critical_path_cpu_s": round(critical_path_cpu(runs[name]), 3),
                        "cpu_ratio_to_1": round(cpu_qps[name] / cpu_qps["workers_1"], 2),
                        "pool_start_s": start_s[name]} for w, name in by_workers.items()},
        "max_score_diff": max_diff,
        "runs": {name: {key: [[round(x, 3) for x in v] if isinstance(v, list) else round(v, 3) for v in values]
                        for key, values in run.items()} for name, run in runs.items()},
        "searcher_stats": dict(searcher.stats),
    }  # fmt: skip
    if "per_sample" in qps:
        result["speedup"] = round(qps["workers_1"] / qps["per_sample"], 2)
    terms = [len(p.query.split()) for r, _ in steps[args.warmup:] for p in map(parse_answer, r) if p.format_ok]
    load = os.getloadavg()[0]
    print(f"catalog {result['items']} items, step {args.requests} x {args.samples} = {n} responses "
          f"({statistics.mean(unique):.0f} unique queries, {min(terms)}-{max(terms)} terms), k={args.k}, "
          f"{os.cpu_count()} CPUs (load average {load:.1f}), median of {args.steps} steps")
    print("  workers  samples/s  vs 1 worker  step s  | CPU s: driver + busiest worker  vs 1 worker | pool start s")
    for w, name in by_workers.items():
        run = runs[name]
        print(f"  {w:7d}  {qps[name]:9.1f}  {qps[name] / qps['workers_1']:10.2f}x  "
              f"{statistics.median(run['wall']):6.3f}  | {critical_path_cpu(run):30.3f}  "
              f"{cpu_qps[name] / cpu_qps['workers_1']:9.2f}x | {start_s[name]:12.1f}")
    if "per_sample" in qps:
        print(f"  per-sample Pyserini loop : {qps['per_sample']:8.1f} samples/s  "
              f"(batched, 1 worker: {result['speedup']:.2f}x faster)")
        print(f"  (per-sample, fast searcher: {qps['per_sample_fast_searcher']:8.1f} samples/s: every sample searched)")
    for name in ways:
        if not name.startswith(("workers_", "per_sample")):
            print(f"  {name:25s}: {qps[name]:8.1f} samples/s ({qps[name] / qps['workers_1']:.2f}x 1 worker)")
    print(f"  scores identical across all ways: max |diff| {max_diff:.1e}; searcher events: {dict(searcher.stats)}")
    if load > (os.cpu_count() or 1):
        print(f"  note: the load average ({load:.1f}) exceeds the {os.cpu_count()} CPUs: other processes took part of "
              f"them, so the wall-clock ratios understate what idle cores give; the CPU columns (a core per process) "
              f"depend on the load less")
    if "server" in runs:
        result["server"] = server_summary(runs, ways["server"].searcher)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    for pooled in searchers.values():
        pooled.close()
    return result


if __name__ == "__main__":
    main()
