"""Training throughput, our GRPO trainer vs TRL's GRPOTrainer, on identical work.

    bash scripts/bench/setup_trl_env.sh                         # once: .venv-trl with TRL (not a project dependency)
    .venv/bin/python scripts/bench/train_throughput.py          # full run (< 10 min on 2 cores), writes RESULTS.md
    .venv/bin/python scripts/bench/train_throughput.py --quick  # smoke run (~1-2 min), writes only into --work-dir

Both sides get the same tiny Qwen2, the same prompts (same token length), the same reward function, group size,
prompts per step, response length (fixed: EOS is unreachable, see bench_task.py), optimizer (AdamW, constant lr,
no weight decay, grad clip 1), no KL, one update per step, fp32, no gradient checkpointing, the same thread
count. Runs alternate (ours, TRL, ours, TRL, ...), each in its own subprocess; the first ``--warmup`` steps of
every run are dropped and medians are taken over the remaining steps of all runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_report import comparison_table, phase_table, plot, pooled, ratio, sweep_table  # noqa: E402
from bench_runs import BENCH_DIR, ROOT, RunResult, RunSpec, run_ours, run_trl  # noqa: E402
from bench_task import build_assets  # noqa: E402

ANALYSIS_MARKER = "<!-- analysis: everything below this line is kept when the benchmark rewrites this file -->"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="GRPO training throughput: ours vs TRL on identical work.")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny settings, no RESULTS.md unless --results-md")
    p.add_argument("--reps", type=int, default=3, help="runs per side for the main comparison (alternating)")
    p.add_argument("--steps", type=int, default=8, help="steps per main run, warmup included")
    p.add_argument("--warmup", type=int, default=1, help="first steps of every run left out of the medians")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--group", type=int, default=4, help="completions per prompt (GRPO group size)")
    p.add_argument("--response-length", type=int, default=64)
    p.add_argument("--sweep-lengths", default="64,128,256", help="response lengths for the scaling curve ('' = none)")
    p.add_argument("--sweep-prompts", default="4,8,16", help="prompts per step for the scaling curve ('' = none)")
    p.add_argument("--sweep-steps", type=int, default=4, help="steps per sweep run, warmup included")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=1, help="torch/OMP threads in each trainer process")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sides", default="ours,trl", help="trainers to run: ours, trl (or one of them)")
    p.add_argument("--work-dir", default="/tmp/recr1_train_bench")
    p.add_argument("--results-md", default=None, help="default: scripts/bench/RESULTS.md (none with --quick)")
    p.add_argument("--python", default=sys.executable, help="python of the project venv (our trainer)")
    p.add_argument("--trl-python", default=os.path.join(ROOT, ".venv-trl", "bin", "python"))
    p.add_argument("--ours-runner", default=None,
                   help="script with run_ours.py's arguments to run our side (e.g. one that monkeypatches a "
                        "proposed change before calling run_ours.main, to measure it on the same work)")
    p.add_argument("--override", action="append", default=[], help="extra override for our trainer (repeatable)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before one run is killed")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.steps, args.sweep_steps = 1, 3, 2
        args.prompts, args.group, args.response_length = 2, 2, 8
        args.sweep_lengths, args.sweep_prompts = "8,16", "2,4"
        args.layers, args.hidden, args.heads = 1, 64, 2
    elif args.results_md is None:
        args.results_md = os.path.join(BENCH_DIR, "RESULTS.md")
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    bad = [s for s in args.sides if s not in ("ours", "trl")]
    if bad:
        p.error(f"--sides: unknown {bad}; use a comma-separated subset of ours, trl")
    if args.warmup >= min(args.steps, args.sweep_steps):
        p.error(f"--warmup={args.warmup} leaves no measured step (steps={args.steps}, sweep-steps={args.sweep_steps})")
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


class Bench:
    """Runs and remembers every run, so a sweep point equal to the main setting reuses the main runs."""

    def __init__(self, args, assets: str, meta: dict):
        self.args, self.assets, self.meta = args, assets, meta
        self.results: list[RunResult] = []
        self.counter = 0

    def run(self, side: str, spec: RunSpec) -> RunResult:
        self.counter += 1
        work = os.path.join(self.args.work_dir, f"run{self.counter:02d}_{side}")
        load = os.getloadavg()[0]
        print(f"[bench] run {self.counter}: {side:4s} prompts={spec.prompts_per_step} group={spec.group} "
              f"R={spec.response_length} steps={spec.steps} (load {load:.1f}) ...", end=" ", flush=True)
        if side == "ours":
            result = run_ours(spec, self.assets, self.meta, work, self.args.python, timeout_s=self.args.timeout,
                              extra_overrides=self.args.override, runner=self.args.ours_runner)
        else:
            result = run_trl(spec, self.assets, work, self.args.trl_python, timeout_s=self.args.timeout)
        self.results.append(result)
        if result.ok:
            print(f"median step {result.median('step_s'):.2f}s, {result.tokens_per_s:.0f} gen tok/s, "
                  f"peak RSS {result.peak_rss_mib:.0f} MiB, wall {result.wall_s:.1f}s", flush=True)
        else:
            print(f"FAILED (exit {result.returncode}); last lines of {result.log_path}:", flush=True)
            with open(result.log_path) as f:
                print("".join(f.readlines()[-25:]), flush=True)
        return result

    def point(self, spec: RunSpec) -> tuple[dict, dict]:
        """(ours, trl) pooled stats for ``spec``, reusing earlier runs of the same work."""
        same = [r for r in self.results if dataclasses.replace(r.spec, steps=0) == dataclasses.replace(spec, steps=0)]
        if not same:
            same = [self.run(side, spec) for side in self.args.sides]
        return pooled(same, "ours"), pooled(same, "trl")


def settings_lines(args, meta: dict, main_spec: RunSpec) -> list[str]:
    m = meta["spec"]
    return [
        f"- model: tiny Qwen2, {m['layers']} layers, hidden {m['hidden']}, {m['heads']} heads (head_dim "
        f"{m['hidden'] // m['heads']}), MLP {2 * m['hidden']}, tied embeddings, vocab {meta['model_vocab']}, "
        f"{meta['parameters'] / 1e6:.2f}M parameters, fp32, sdpa attention, no gradient checkpointing",
        f"- prompts: {m['num_prompts']} synthetic ChatML prompts of {m['prompt_words']} words = exactly "
        f"{meta['prompt_tokens']} tokens each (word-level tokenizer), shuffled",
        f"- responses: exactly R tokens (EOS id {meta['eos_token_id']} is past the model vocabulary, so never sampled),"
        f" temperature 1.0, no top-k / top-p",
        "- reward: fraction of response words starting with a vowel (scripts/bench/bench_task.py), the same function "
        "on both sides",
        f"- GRPO: {main_spec.prompts_per_step} prompts x group {main_spec.group} = {main_spec.batch} completions per "
        f"step, R = {main_spec.response_length}; advantages (r - mean) / std within the group; clip 0.2; token-mean "
        "loss over the batch (TRL loss_type='dapo'); no KL (TRL beta=0, ours use_kl_loss=False, no reference model); "
        "one optimizer update per step on the whole batch (ours: ppo_mini_batch_size = train_batch_size, one "
        "micro-batch; TRL: per_device_train_batch_size = batch, no accumulation, num_iterations=1)",
        f"- optimizer: AdamW lr {main_spec.lr}, betas (0.9, 0.999), weight decay 0, constant schedule, grad clip 1.0",
        f"- processes: each run is a fresh subprocess with OMP/MKL threads = {main_spec.threads} (one thread: on "
        "2 shared cores, 2 OpenMP threads per process made steps up to 20x slower whenever another job held a "
        "core), TOKENIZERS_PARALLELISM=false; ours = `verl.trainer.main_ppo.main()` (scripts/bench/run_ours.py: "
        "the hydra entry point plus a per-step CPU-time record) with trainer.backend=local (in-process worker, "
        "one rank: the plain module, no FSDP2 wrapping) and rollout.name=hf, recompute_old_log_prob=auto (one "
        "update per batch: no separate old-log-prob pass); TRL = GRPOTrainer(use_cpu=True) via "
        "scripts/bench/run_trl.py in .venv-trl",
        f"- timing: step time = ours `timing_s/step` from metrics.jsonl, TRL on_step_begin -> on_step_end (callback);"
        " CPU s = `time.process_time()` over the same span (all threads of the process); first "
        f"{main_spec.warmup} step(s) of every run dropped; medians over all measured steps of all runs",
        f"- main comparison: {args.reps} runs per side x {main_spec.steps - main_spec.warmup} measured steps, "
        f"alternating {'/'.join(args.sides)}; sweeps: 1 run per side and point, "
        f"{args.sweep_steps - main_spec.warmup} measured step(s)",
    ]


def versions(python: str) -> str:
    import subprocess

    code = ("import torch, transformers, importlib.metadata as m\n"
            "try: t = ', trl ' + m.version('trl')\nexcept Exception: t = ''\n"
            "print(f'torch {torch.__version__}, transformers {transformers.__version__}{t}')")
    try:
        return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip()
    except Exception as e:  # the report still gets written
        return f"unknown ({e})"


def write_markdown(path: str, args, meta, main_spec, ours, trl, length_points, batch_points, loads, elapsed,
                   plot_name: str, command: str) -> None:
    kept = ""
    if os.path.isfile(path):
        with open(path) as f:
            text = f.read()
        if ANALYSIS_MARKER in text:
            kept = text.split(ANALYSIS_MARKER, 1)[1]
    steps_ratio = ratio(ours, trl, "steps_per_s")
    doc = [
        "# GRPO training throughput: ours vs TRL",
        "",
        "Generated by `scripts/bench/train_throughput.py` (re-run it to refresh everything above the analysis "
        "marker).",
        "",
        f"**Result: our steps/s = {steps_ratio:.2f}x TRL's** on identical work (CPU time per step: TRL/ours "
        f"{ratio(trl, ours, 'cpu_s'):.2f}x; goal: >= 1.5x). Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared; load average "
        f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end (other jobs ran on the same cores, so every number "
        f"carries that noise). Whole benchmark: {elapsed / 60:.1f} min.",
        "",
        f"Command: `{command}`",
        "",
        f"Versions: ours: {versions(args.python)}; TRL side: {versions(args.trl_python)}.",
        "",
        "## Main comparison",
        "",
        comparison_table(ours, trl),
        "",
        "Median time per phase (ours: `timing_s/*`; TRL: time inside `GRPOTrainer._generate`, and the rest of the "
        "step: reward, one forward + backward, optimizer; TRL computes no separate old log-prob pass when "
        "on-policy):",
        "",
        phase_table(ours, trl),
        "",
        "## Scaling",
        "",
        sweep_table(length_points, "response length"),
        "",
        sweep_table(batch_points, "completions per step"),
        "",
        f"![throughput plot]({plot_name})",
        "",
        "## Exact settings",
        "",
        *settings_lines(args, meta, main_spec),
        "",
        ANALYSIS_MARKER,
    ]
    with open(path, "w") as f:
        f.write("\n".join(doc) + (kept if kept else "\n"))


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    if "trl" in args.sides and not os.path.isfile(args.trl_python):
        print(f"[bench] {args.trl_python} not found: run `bash scripts/bench/setup_trl_env.sh` first "
              "(or pass --sides ours)", file=sys.stderr)
        return 2
    os.makedirs(args.work_dir, exist_ok=True)
    for name in os.listdir(args.work_dir):  # runs of an earlier invocation would only confuse a reader
        if re.fullmatch(r"run\d+_(ours|trl|patched)", name):
            shutil.rmtree(os.path.join(args.work_dir, name), ignore_errors=True)
    assets = os.path.join(args.work_dir, f"assets_l{args.layers}_h{args.hidden}_a{args.heads}")
    meta = build_assets(assets, layers=args.layers, hidden=args.hidden, heads=args.heads)
    load_start = os.getloadavg()[0]
    print(f"[bench] assets in {assets}: {meta['parameters'] / 1e6:.2f}M params, prompts of {meta['prompt_tokens']} "
          f"tokens; load average {load_start:.1f}", flush=True)

    main_spec = RunSpec(prompts_per_step=args.prompts, group=args.group, response_length=args.response_length,
                        steps=args.steps, warmup=args.warmup, lr=args.lr, seed=args.seed, threads=args.threads)
    bench = Bench(args, assets, meta)
    for _ in range(args.reps):
        for side in args.sides:
            bench.run(side, main_spec)
    ours, trl = pooled(bench.results, "ours"), pooled(bench.results, "trl")

    sweep = dataclasses.replace(main_spec, steps=args.sweep_steps)
    length_points = [(n, *bench.point(dataclasses.replace(sweep, response_length=n))) for n in _ints(args.sweep_lengths)]
    batch_points = [(p * args.group, *bench.point(dataclasses.replace(sweep, prompts_per_step=p)))
                    for p in _ints(args.sweep_prompts)]
    elapsed = time.perf_counter() - start
    load_end = os.getloadavg()[0]

    print("\n" + comparison_table(ours, trl) + "\n")
    print(phase_table(ours, trl) + "\n")
    print(sweep_table(length_points, "response length") + "\n")
    print(sweep_table(batch_points, "completions per step") + "\n")
    print(f"[bench] ratio ours/TRL steps/s = {ratio(ours, trl, 'steps_per_s'):.2f}x; "
          f"load average {load_start:.1f} -> {load_end:.1f}; {elapsed / 60:.1f} min", flush=True)

    summary = {"settings": vars(args) | {"sides": args.sides}, "assets": meta, "main": {"ours": ours, "trl": trl},
               "length_sweep": length_points, "batch_sweep": batch_points, "load_average": [load_start, load_end],
               "elapsed_s": elapsed, "runs": [r.to_dict() for r in bench.results]}
    json_path = os.path.join(args.work_dir, "train_throughput.json")
    with open(json_path, "w") as f:
        json.dump(summary, f, indent=1, default=str)
    png_path = os.path.join(args.work_dir, "train_throughput.png")
    if args.results_md:
        png_path = os.path.join(os.path.dirname(os.path.abspath(args.results_md)), "train_throughput.png")
    title = (f"tiny Qwen2 GRPO on {os.cpu_count()} CPU cores, {args.threads} thread(s) per trainer; "
             f"main setting {main_spec.prompts_per_step}x{main_spec.group} completions, R={main_spec.response_length}")
    plot(png_path, ours, trl, length_points, batch_points, title)
    if args.results_md:
        command = "python scripts/bench/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_markdown(args.results_md, args, meta, main_spec, ours, trl, length_points, batch_points,
                       (load_start, load_end), elapsed, os.path.basename(png_path), command.strip())
        print(f"[bench] wrote {args.results_md} and {png_path}")
    print(f"[bench] raw numbers: {json_path}")
    return 0 if (ours or "ours" not in args.sides) and (trl or "trl" not in args.sides) else 1


if __name__ == "__main__":
    sys.exit(main())
