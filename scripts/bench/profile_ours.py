"""Sample our trainer's step with py-spy and say where the time goes.

    .venv/bin/python scripts/bench/profile_ours.py [--prompts 8 --group 4 --response-length 64 --steps 6]

Runs ``python -m verl.trainer.main_ppo`` on the benchmark's work (same overrides as train_throughput.py) under
``py-spy record --format raw`` (py-spy is installed in .venv-trl only), keeps the samples taken inside
``RayPPOTrainer.train_step`` (start-up and the first step's warm-up are mostly outside or diluted), and prints:
the share of step samples under each named part of the step (inclusive), and the hottest leaf functions (self).
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_runs import ROOT, RunSpec, child_env, ours_overrides  # noqa: E402
from bench_task import build_assets  # noqa: E402

# (label, substrings of py-spy frames "function (file:line)" that must all be on the stack) for the inclusive
# breakdown; indented labels are parts of the one above.
PARTS = [
    ("generate_sequences (rollout)", ("generate_sequences (verl/workers/rollout/hf_rollout.py",)),
    ("  model forward per token", ("generate_batch (", "ForCausalLM.forward (")),
    ("    KV-cache update", ("generate_batch (", "Layer.update (")),
    ("    FSDP2 pre/post-forward hooks", ("generate_batch (", "torch/distributed/fsdp/")),
    ("  sample_next_token", ("sample_next_token (",)),
    ("reward (decode + score)", ("compute_reward (",)),
    ("compute_log_prob (old policy)", ("compute_log_prob (verl/workers/actor/dp_actor.py",)),
    ("update_policy (actor)", ("update_policy (verl/workers/actor/dp_actor.py",)),
    ("  forward in update", ("update_policy (", "_forward_micro_batch (")),
    ("    log-prob + entropy kernels (entropy: a detached metric when entropy_coeff = 0)",
     ("update_policy (", "_forward_micro_batch (", "verl/utils/torch_functional.py")),
    ("  backward", ("update_policy (", "backward (")),
    ("  grad clip + optimizer step", ("_optimizer_step (",)),
    ("    DTensor dispatch in the optimizer", ("_optimizer_step (", "torch/distributed/tensor/")),
    ("advantages", ("compute_advantage (",)),
    ("DataProto ops (union/repeat/select/...)", ("verl/protocol.py",)),
    ("FSDP2 hooks anywhere (pre/post forward, all-gather)", ("torch/distributed/fsdp/",)),
    ("logits -> log-probs / entropy (torch_functional)", ("verl/utils/torch_functional.py",)),
]
STEP_FRAME = "train_step ("


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="py-spy profile of our GRPO step on the benchmark's work")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--response-length", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--work-dir", default="/tmp/recr1_train_bench/profile")
    p.add_argument("--py-spy", default=os.path.join(ROOT, ".venv-trl", "bin", "py-spy"))
    p.add_argument("--override", action="append", default=[], help="extra trainer override (repeatable)")
    p.add_argument("--top", type=int, default=25)
    return p.parse_args(argv)


def read_raw(path: str) -> list[tuple[list[str], int]]:
    """py-spy raw output: one ``frame;frame;...;leaf count`` line per distinct stack, root first."""
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], top: int) -> str:
    """Markdown: inclusive share of each PART within step samples, then the hottest leaf frames."""
    step = [(frames, n) for frames, n in stacks if any(STEP_FRAME in f for f in frames)]
    total = sum(n for _, n in step)
    if total == 0:
        return "no samples inside train_step (did the run fail?)"
    lines = [f"{total} samples inside train_step", "", "| part of the step | share (inclusive) |", "|---|---|"]
    for label, needles in PARTS:
        hits = sum(n for frames, n in step if all(any(needle in f for f in frames) for needle in needles))
        depth = (len(label) - len(label.lstrip(" "))) // 2
        shown = "&nbsp;&nbsp;" * 2 * depth + ("└ " if depth else "") + label.strip()  # markdown trims spaces
        lines.append(f"| {shown} | {100.0 * hits / total:.1f}% |")
    leaves = collections.Counter()
    for frames, n in step:
        leaves[_short(frames[-1])] += n
    lines += ["", f"| hottest leaf frames (self time) | share |", "|---|---|"]
    for frame, n in leaves.most_common(top):
        lines.append(f"| `{frame}` | {100.0 * n / total:.1f}% |")
    return "\n".join(lines)


def _short(frame: str) -> str:
    """'forward (/long/path/site-packages/transformers/models/qwen2/modeling_qwen2.py:123)' -> shorter path."""
    for marker in ("site-packages/", "/work/main/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return head + "(" + tail.split(marker, 1)[1]
    return frame


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.py_spy):
        print(f"{args.py_spy} not found: run `bash scripts/bench/setup_trl_env.sh` (it installs py-spy)", file=sys.stderr)
        return 2
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    assets = os.path.join(os.path.dirname(args.work_dir), f"assets_l{args.layers}_h{args.hidden}_a{args.heads}")
    meta = build_assets(assets, layers=args.layers, hidden=args.hidden, heads=args.heads)
    spec = RunSpec(prompts_per_step=args.prompts, group=args.group, response_length=args.response_length,
                   steps=args.steps, threads=args.threads)
    raw = os.path.join(args.work_dir, "pyspy_raw.txt")
    cmd = [args.py_spy, "record", "--rate", str(args.rate), "--format", "raw", "--output", raw, "--"]
    cmd += [sys.executable, "-m", "verl.trainer.main_ppo"]
    cmd += ours_overrides(spec, assets, meta, os.path.join(args.work_dir, "run")) + args.override
    with open(os.path.join(args.work_dir, "run.log"), "w") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=child_env(args.threads), stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not os.path.isfile(raw):
        print(f"profiled run failed (exit {rc}); see {args.work_dir}/run.log", file=sys.stderr)
        return 1
    report = summarize(read_raw(raw), args.top)
    with open(os.path.join(args.work_dir, "profile.md"), "w") as f:
        f.write(report + "\n")
    print(report)
    print(f"\n[profile] raw stacks: {raw} (flamegraph.pl or speedscope can read them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
