"""Turn benchmark runs into medians, a Markdown report and a PNG plot."""
from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence

from bench_runs import RunResult


def pooled(results: Iterable[RunResult], side: str) -> dict:
    """Medians over every measured step of every successful run of ``side``; peak RSS = max over runs."""
    runs = [r for r in results if r.side == side and r.ok]
    if not runs:
        return {}
    step_s = [s for r in runs for s in r.step_s]
    cpu_s = [s for r in runs for s in r.cpu_s if s == s]  # NaN-free
    rates = [t / s for r in runs for t, s in zip(r.tokens, r.step_s) if s > 0]
    phases: dict[str, list[float]] = {}
    for r in runs:
        for name, values in r.phases.items():
            phases.setdefault(name, []).extend(values)
    return {
        "runs": len(runs),
        "steps": len(step_s),
        "step_s": statistics.median(step_s),
        "steps_per_s": 1.0 / statistics.median(step_s),
        "cpu_s": statistics.median(cpu_s) if cpu_s else float("nan"),
        "run_medians_s": [r.median("step_s") for r in runs],
        "tokens_per_s": statistics.median(rates),
        "peak_rss_mib": max(r.peak_rss_mib for r in runs),
        "wall_s": statistics.median([r.wall_s for r in runs]),
        "phases": {k: statistics.median(v) for k, v in phases.items()},
    }


def ratio(a: dict, b: dict, key: str) -> float:
    if not a or not b or not b.get(key):
        return float("nan")
    return a[key] / b[key]


def _f(x, fmt="{:.3f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def comparison_table(ours: dict, trl: dict) -> str:
    """Main comparison: each figure for both trainers and their ratio."""

    def row(label: str, key: str, fmt: str, ratio_fmt: str, bold: bool = False, inverse: bool = False) -> str:
        value = _f(ratio(trl, ours, key) if inverse else ratio(ours, trl, key), ratio_fmt)
        value = f"**{value}**" if bold and value != "n/a" else value
        return "| " + " | ".join([label, _f(ours.get(key), fmt), _f(trl.get(key), fmt), value]) + " |"

    runs = lambda d: f"{d.get('runs', 0)} x {d.get('steps', 0) // max(d.get('runs', 1), 1)}"  # noqa: E731
    medians = lambda d: ", ".join(_f(x, "{:.2f}") for x in d.get("run_medians_s", []))  # noqa: E731
    lines = [
        "| | ours (verl.trainer.main_ppo) | TRL GRPOTrainer | ours / TRL |", "|---|---|---|---|",
        row("steps/s (median, wall clock)", "steps_per_s", "{:.3f}", "{:.2f}x", bold=True),
        row("step time, s (median)", "step_s", "{:.2f}", "{:.2f}"),
        row("CPU s per step (median; TRL/ours in the ratio column, robust to other load)", "cpu_s", "{:.2f}",
            "{:.2f}x", bold=True, inverse=True),
        row("generated tokens/s", "tokens_per_s", "{:.0f}", "{:.2f}x"),
        row("peak RSS of the process tree, MiB", "peak_rss_mib", "{:.0f}", "{:.2f}"),
        row("whole process wall time, s (median, incl. start-up)", "wall_s", "{:.1f}", "{:.2f}"),
        f"| runs x measured steps | {runs(ours)} | {runs(trl)} |  |",
        f"| per-run median step time, s | {medians(ours)} | {medians(trl)} |  |",
    ]
    return "\n".join(lines)


def phase_table(ours: dict, trl: dict) -> str:
    sides = [("ours", ours), ("TRL", trl)]
    names: list[str] = []
    for _, stats in sides:
        names += [n for n in stats.get("phases", {}) if n not in names]
    lines = ["| phase | " + " | ".join(f"{label}, s" for label, _ in sides) + " |",
             "|---|" + "---|" * len(sides)]
    for name in names:
        cells = [_f(stats.get("phases", {}).get(name), "{:.3f}") if name in stats.get("phases", {}) else ""
                 for _, stats in sides]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(points: Sequence[tuple[int, dict, dict]], label: str) -> str:
    lines = [f"| {label} | ours step, s | TRL step, s | ours / TRL steps/s | ours CPU s | TRL CPU s | "
             "TRL / ours CPU s | ours gen tok/s | TRL gen tok/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for x, ours, trl in points:
        lines.append(f"| {x} | {_f(ours.get('step_s'), '{:.2f}')} | {_f(trl.get('step_s'), '{:.2f}')} | "
                     f"{_f(ratio(ours, trl, 'steps_per_s'), '{:.2f}x')} | {_f(ours.get('cpu_s'), '{:.2f}')} | "
                     f"{_f(trl.get('cpu_s'), '{:.2f}')} | {_f(ratio(trl, ours, 'cpu_s'), '{:.2f}x')} | "
                     f"{_f(ours.get('tokens_per_s'), '{:.0f}')} | {_f(trl.get('tokens_per_s'), '{:.0f}')} |")
    return "\n".join(lines)


def plot(path: str, ours: dict, trl: dict, length_points, batch_points, title: str) -> None:
    """Three panels: step-time breakdown of the main setting, step time vs response length, vs batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    bars = [("ours", ours), ("TRL", trl)]
    bottoms = {label: 0.0 for label, _ in bars}
    colors = {"gen": "tab:blue", "old_log_prob": "tab:orange", "update_actor": "tab:green",
              "rest (log-prob + update)": "tab:olive", "other": "tab:gray"}
    for side, stats in bars:
        phases = dict(stats.get("phases", {}))
        shown = {k: v for k, v in phases.items() if k in colors}
        shown["other"] = max(stats.get("step_s", 0.0) - sum(shown.values()), 0.0)
        for name, value in shown.items():
            ax.bar(side, value, bottom=bottoms[side], color=colors[name], label=name)
            bottoms[side] += value
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    ax.set_ylabel("median step time (s)")
    ax.set_title("where a step goes (main setting)")

    for ax, points, xlabel in ((axes[1], length_points, "response length (tokens)"),
                               (axes[2], batch_points, "completions per step")):
        xs = [p[0] for p in points]
        for idx, side, marker in ((1, "ours", "o-"), (2, "TRL", "s--")):
            ys = [p[idx].get("step_s", float("nan")) for p in points]
            ax.plot(xs, ys, marker, label=side)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("median step time (s)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].set_title("step time vs response length")
    axes[2].set_title("step time vs batch size")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
