"""The run report's markdown: steps, time, and first / last / best values of the metrics people look at first."""
from __future__ import annotations

import re
import statistics

from recr1.report.series import curve, keys_matching

# Shown in this order when logged; the validation metrics of every data source come after the first of them.
HEADLINE = ("train/loss", "val/loss", "critic/score/mean", "critic/rewards/mean", "reward/ndcg/mean",
            "reward/format_ok/mean", "response_length/mean", "actor/entropy", "actor/ppo_kl", "actor/kl_loss",
            "actor/reward_kl_penalty", "actor/grad_norm", "timing_s/step", "perf/throughput")
# "best" is the maximum for these, the minimum for the losses; the other metrics have no better direction.
_HIGHER_IS_BETTER = re.compile(r"^(critic/(score|rewards)/mean|reward/(ndcg|format_ok)/mean|val-core/.*"
                               r"|val-aux/[^/]+/(ndcg|format_ok)/mean)$")
_LOWER_IS_BETTER = re.compile(r"^(train|val)/loss$")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def metric_rows(rows: list) -> list:
    """``[(key, [first step, value], [last step, value], [best step, value] or None)]`` for the headline and
    validation metrics logged (val-core and val-aux NDCG right after the first headline metric)."""
    keys = [k for k in HEADLINE if curve(rows, k)]
    keys[1:1] = keys_matching(rows, r"val-core/.+") + keys_matching(rows, r"val-aux/[^/]+/ndcg/mean")
    out = []
    for key in keys:
        points = curve(rows, key)
        best = None
        if _HIGHER_IS_BETTER.match(key):
            best = max(points, key=lambda p: p[1])
        elif _LOWER_IS_BETTER.match(key):
            best = min(points, key=lambda p: p[1])
        out.append((key, points[0], points[-1], best))
    return out


def markdown(source: str, rows: list, figures: list, skipped: list) -> str:
    """The report's summary.md: where the metrics came from, steps and time, a first/last/best table, the figures
    (``[(file name, title)]``) and the skipped figures (``[(file name, note)]``)."""
    train = [row for row in rows if row.get("timing_s/step") is not None]
    val_steps = [row["step"] for row in rows if any(k.startswith("val-core/") for k in row)]
    lines = ["# Run report", "", f"Metrics: `{source}`", ""]
    if rows:
        lines.append(f"- steps logged: {rows[0]['step']} .. {rows[-1]['step']} ({len(train)} training steps, "
                     f"{len(val_steps)} validations{' at ' + ', '.join(map(str, val_steps)) if val_steps else ''})")
    if train:
        times = [row["timing_s/step"] for row in train]
        lines.append(f"- training time: {sum(times):.1f} s (sum of timing_s/step; median step "
                     f"{statistics.median(times):.3g} s, max {max(times):.3g} s)")
    lines.append("")
    table = metric_rows(rows)
    if table:
        lines += ["| metric | first (step) | last (step) | best (step) |", "|---|---:|---:|---:|"]
        for key, (s0, v0), (s1, v1), best in table:
            best_cell = "-" if best is None else f"{_fmt(best[1])} ({best[0]})"
            lines.append(f"| {key} | {_fmt(v0)} ({s0}) | {_fmt(v1)} ({s1}) | {best_cell} |")
        lines.append("")
    if figures:
        lines += ["## Plots", ""] + [f"![{title}]({name})" for name, title in figures] + [""]
    if skipped:
        lines += ["## Skipped", ""] + [f"- {name}: {note}" for name, note in skipped] + [""]
    return "\n".join(lines)
