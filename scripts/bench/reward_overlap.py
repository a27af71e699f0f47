"""Trainer-level figure: step time with the reward overlapped with the log-prob passes vs in line, on the same work.

    python scripts/bench/reward_overlap.py [--items 200000] [--prompts 32] [--n 12] [--steps 6] [--runs 2]

One GRPO step = ``prompts x n`` responses from a tiny Qwen2 (scripts/bench/bench_task.py, HF rollout, one torch
thread), an old-log-prob pass (recompute_old_log_prob=true), a reference pass (use_kl_loss) and one update. The
reward is real retrieval work: every response becomes a query a policy might write for its prompt's request
(overlap_reward.py) and is scored by ``recr1.reward.compute_score_batch`` against a Lucene index of a synthetic
catalog of ``--items`` products (k=1000, query cache off, so every step searches). Runs alternate
``reward_model.launch_reward_fn_async`` True / False in this one process (same JVM, same index, same seeds), the
first step of every run is dropped, and medians are taken over the remaining steps of all runs.

Figures: median step time each way; the reward's own time (timing_s/reward) and the time the step waited for it
(timing_s/reward_wait); and what the overlapped reward adds to the step, as a fraction of the reward's own time:
``(step_async - (step_inline - reward_inline)) / reward_inline`` (target: under 10%).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_task import build_assets  # noqa: E402
from reward_throughput import load_requests, prepare_index, query_variants  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def write_prompts(assets: str, raw: str, out: str, seed: int) -> str:
    """The benchmark's prompts (same token length each) paired with catalog requests: ground truth = the request's
    target, extra_info.variants = the queries a policy might write for it."""
    import pandas as pd

    requests = load_requests(raw)
    rng = random.Random(seed)
    rows = pd.read_parquet(os.path.join(assets, "prompts.parquet")).to_dict("records")
    for i, row in enumerate(rows):
        request = requests[i % len(requests)]
        row.update(data_source="amazon_c4_train", reward_model={"style": "rule", "ground_truth": {"target": [request["target"]]}},
                   extra_info={"index": i, "split": "train", "variants": query_variants(request, rng)})
    pd.DataFrame(rows).to_parquet(out)
    return out


def overrides(args, assets: str, prompts: str, index: str, work: str, launch_async: bool) -> list[str]:
    """Hydra overrides of one run."""
    batch = args.prompts * args.n
    return [
        f"data.train_files={prompts}", "data.val_files=null", f"data.train_batch_size={args.prompts}",
        "data.max_prompt_length=64", f"data.max_response_length={args.response_length}",
        f"actor_rollout_ref.model.path={os.path.join(assets, 'model')}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        "actor_rollout_ref.actor.optim.lr=1e-5", f"actor_rollout_ref.actor.ppo_mini_batch_size={args.prompts}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={batch}",
        "actor_rollout_ref.actor.recompute_old_log_prob=true", "actor_rollout_ref.actor.use_kl_loss=True",
        f"actor_rollout_ref.rollout.n={args.n}", "actor_rollout_ref.rollout.name=hf",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={batch}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={batch}",
        "algorithm.adv_estimator=grpo", "reward_model.reward_manager=batch",
        f"reward_model.launch_reward_fn_async={launch_async}", "reward_model.num_examine=0",
        f"custom_reward_function.path={os.path.join(HERE, 'overlap_reward.py')}",
        "custom_reward_function.name=compute_score",
        "+custom_reward_function.reward_kwargs.retriever=bm25", f"+custom_reward_function.reward_kwargs.index={index}",
        "+custom_reward_function.reward_kwargs.cache_size=0", f"+custom_reward_function.reward_kwargs.k_train={args.k}",
        f"trainer.backend={args.backend}", "trainer.device=cpu", "trainer.n_gpus_per_node=1", "trainer.logger=[jsonl]",
        f"trainer.total_training_steps={args.steps}", "trainer.total_epochs=100", "trainer.val_before_train=False",
        "trainer.test_freq=-1", "trainer.save_freq=-1", f"trainer.default_local_dir={work}",
        "trainer.project_name=bench", "trainer.experiment_name=overlap", "trainer.balance_batch=False",
    ]


def run(args, assets, prompts, index, work, launch_async) -> list[dict]:
    """One training run in this process; its metrics rows (one per step)."""
    from verl.trainer.main_ppo import load_config, run_ppo

    run_ppo(load_config(overrides(args, assets, prompts, index, work, launch_async)))
    with open(os.path.join(work, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def median_of(rows: list[dict], key: str) -> float:
    return statistics.median(row.get(key, 0.0) for row in rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200000, help="catalog size")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step")
    parser.add_argument("--n", type=int, default=12, help="responses per prompt (rollout.n)")
    parser.add_argument("--response-length", type=int, default=32)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=6, help="steps per run (the first is dropped)")
    parser.add_argument("--runs", type=int, default=2, help="runs per way, alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("ray", "local"), default="ray",
                        help="ray: the worker in its own process, as on a cluster; local: in this process, sharing "
                             "the driver's GIL with the reward thread")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "recr1-bench-overlap"),
                        help="model, prompts and runs (the catalog and index: reward_throughput.py's folder)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # the torch side on one core, the search on the other (as the reward's CPU on a GPU node)
    if args.backend == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})

    t0 = time.perf_counter()
    assets = os.path.join(args.workdir, "assets")
    build_assets(assets, num_prompts=max(512, args.prompts * args.steps))
    catalog = os.path.join(tempfile.gettempdir(), f"recr1-bench-reward-{args.items}-seed{args.seed}")  # shared with
    raw, index, _ = prepare_index(catalog, args.items, 500, args.seed)                # reward_throughput.py
    prompts = write_prompts(assets, raw, os.path.join(args.workdir, "overlap_prompts.parquet"), args.seed)
    print(f"[overlap] assets and index ready in {time.perf_counter() - t0:.0f} s", flush=True)

    rows: dict[bool, list[dict]] = {True: [], False: []}
    for r in range(args.runs):
        for launch_async in (True, False) if r % 2 == 0 else (False, True):
            work = os.path.join(args.workdir, "runs", f"{r}-{'async' if launch_async else 'inline'}")
            if os.path.isdir(work):
                import shutil

                shutil.rmtree(work)
            steps = [row for row in run(args, assets, prompts, index, work, launch_async) if "timing_s/step" in row]
            rows[launch_async] += steps[1:]
            print(f"[overlap] run {r} async={launch_async}: step {median_of(steps[1:], 'timing_s/step'):.3f} s, "
                  f"reward {median_of(steps[1:], 'timing_s/reward'):.3f} s", flush=True)

    phases = ("step", "gen", "reward", "reward_wait", "old_log_prob", "ref", "update_actor")
    med = {way: {p: round(median_of(rows[flag], f"timing_s/{p}"), 4) for p in phases}
           for way, flag in (("async", True), ("inline", False))}
    without_reward = med["inline"]["step"] - med["inline"]["reward"]
    added = (med["async"]["step"] - without_reward) / med["inline"]["reward"]
    result = {"items": args.items, "responses_per_step": args.prompts * args.n, "k": args.k,
              "steps_measured": {way: len(rows[flag]) for way, flag in (("async", True), ("inline", False))},
              "median_s": med, "async_speedup": round(med["inline"]["step"] / med["async"]["step"], 3),
              "overlapped_reward_adds_frac_of_its_time": round(added, 3)}
    print(f"catalog {args.items} items, {args.prompts} x {args.n} = {args.prompts * args.n} responses per step, k={args.k}")
    print(f"{'phase (median s)':<18}{'inline':>10}{'async':>10}")
    for p in phases:
        print(f"{p:<18}{med['inline'][p]:>10.3f}{med['async'][p]:>10.3f}")
    print(f"step time inline / async: {result['async_speedup']:.2f}x; the overlapped reward adds "
          f"{100 * added:.1f}% of its own time to the step (target < 10%)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
