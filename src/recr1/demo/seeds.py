"""``python -m recr1.demo.seeds DIR [DIR ...]``: the demo's overall test numbers across seeds.

Each DIR is a finished demo run (its ``results.json``), e.g. ``outputs/demo`` (seed 1) and the folders of
``bash scripts/demo.sh --seed 2 --out outputs/demo-seed2``. Prints one row per seed and the mean, and says
whether RL's margin over each baseline is larger than the spread of RL across seeds (max - min); writes the
same as ``seeds.md`` and ``seeds.json`` next to the first run (or ``--out``). Runs of the seqrec task
(``--task seqrec``) compare against their own baseline, the last title; all runs must share one baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from recr1.demo.report import methods

METRIC = "ndcg@100"


def baseline_of(results: dict) -> str:
    """The no-model baseline a run compared against (runs written before tasks existed: the raw request)."""
    return results.get("baseline", "raw_request")


def load_runs(dirs: list[str]) -> list[dict]:
    """``results.json`` of each run folder; a missing or unfinished run is an error naming the folder."""
    runs = []
    for d in dirs:
        path = os.path.join(d, "results.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: is {d} a finished demo run?")
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
        missing = [m for m in methods(baseline_of(results)) if m not in results.get("test", {})]
        if missing:
            raise ValueError(f"{path} has no test results for {missing}")
        runs.append(results)
    return runs


def summarize(runs: list[dict]) -> dict:
    """Per-seed overall test NDCG@100 of each method, their means, RL's spread and margins.

    Returns ``{"baseline": "raw_request" | "last_title", "seeds": [...], "per_seed": {method: [v, ...]},
    "mean": {method: v}, "rl_spread": max-min, "margin": {baseline: mean(rl) - mean(baseline)},
    "margin_exceeds_spread": {baseline: bool}, "rl_over_<baseline>": {"per_seed", "mean", "min", "max"},
    "minutes": [total minutes per run]}``. Raises ValueError when the runs have different baselines.
    """
    baselines = sorted({baseline_of(r) for r in runs})
    if len(baselines) != 1:
        raise ValueError(f"the runs compare against different baselines {baselines}: mix no tasks")
    base = baselines[0]
    per_seed = {m: [r["test"][m]["overall"][METRIC] for r in runs] for m in methods(base)}
    mean = {m: statistics.fmean(v) for m, v in per_seed.items()}
    spread = max(per_seed["rl"]) - min(per_seed["rl"])
    margin = {m: mean["rl"] - mean[m] for m in methods(base) if m != "rl"}
    ratios = [rl / raw for rl, raw in zip(per_seed["rl"], per_seed[base])]
    return {
        "baseline": base,
        "seeds": [r.get("seed") for r in runs],
        "per_seed": per_seed,
        "mean": mean,
        "rl_spread": spread,
        "margin": margin,
        "margin_exceeds_spread": {m: v > spread for m, v in margin.items()},
        f"rl_over_{base}": {"per_seed": ratios, "mean": statistics.fmean(ratios), "min": min(ratios),
                                "max": max(ratios)},
        "minutes": [round(r.get("total_seconds", 0.0) / 60, 1) for r in runs],
    }


def markdown(summary: dict) -> str:
    """The table and a verdict line per baseline."""
    base = summary.get("baseline", "raw_request")
    lines = [f"| seed | {base} | sft | rl | rl / {base} | minutes |", "|---:|---:|---:|---:|---:|---:|"]
    per, ratios = summary["per_seed"], summary[f"rl_over_{base}"]["per_seed"]
    for i, seed in enumerate(summary["seeds"]):
        lines.append(f"| {seed} | {per[base][i]:.3f} | {per['sft'][i]:.3f} | {per['rl'][i]:.3f} | "
                     f"{ratios[i]:.2f}x | {summary['minutes'][i]} |")
    mean = summary["mean"]
    lines.append(f"| **mean** | {mean[base]:.3f} | {mean['sft']:.3f} | {mean['rl']:.3f} | "
                 f"{summary[f'rl_over_{base}']['mean']:.2f}x | |")
    lines.append("")
    for base, margin in summary["margin"].items():
        verdict = "larger" if summary["margin_exceeds_spread"][base] else "NOT larger"
        lines.append(f"- RL - {base}: {margin:+.3f} NDCG@100 (mean), {verdict} than RL's spread across seeds "
                     f"({summary['rl_spread']:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.demo.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished demo output folders (one per seed)")
    parser.add_argument("--out", default=None, help="folder for seeds.md / seeds.json (default: the first run's)")
    args = parser.parse_args(argv)
    try:
        summary = summarize(load_runs(args.runs))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = (f"Overall held-out test NDCG@100 of the demo across seeds ({', '.join(args.runs)})\n\n"
            + markdown(summary) + "\n")
    out = args.out or args.runs[0]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "seeds.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out, "seeds.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
