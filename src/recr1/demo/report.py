"""The demo's results: results.json, the markdown table printed at the end, and curves.png.

results.json::

    {"seed": 1, "stages": {"catalog": {"seconds": 2.1, "summary": "..."}, ...}, "total_seconds": ...,
     "test": {"raw_request": {"overall": {"n", "ndcg@10", "ndcg@100", "recall@100", "format_ok"},
                              "Baby_Products": {...}, ...},
              "sft": {...}, "rl": {...}},
     "val_curve": [[step, ndcg@100], ...], "verdict": {"rl_beats_sft": true, "rl_beats_raw_request": true,
     "rl_over_raw_request": 1.9}, "baseline": "raw_request", "settings": {...}}

The seqrec task's baseline is ``last_title`` (the last history item's title as the query) in place of
``raw_request``, with the same layout.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

from recr1.demo.paths import DemoPaths
from recr1.demo.settings import DemoSettings
from recr1.report.series import curve, smooth

METHODS = ("raw_request", "sft", "rl")
BASELINES = ("raw_request", "last_title")
METRICS = (("ndcg@10", "NDCG@10"), ("ndcg@100", "NDCG@100"), ("recall@100", "Recall@100"), ("format_ok", "format-ok"))
_TEST_SOURCE = re.compile(r"^(?:amazon_c4_|amazon_review_)?(.*?)(?:_test)?$")


def methods(baseline: str = "raw_request") -> tuple[str, str, str]:
    """The compared methods: the task's no-model baseline, SFT, RL."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; known: {BASELINES}")
    return baseline, "sft", "rl"


def domain_name(data_source: str) -> str:
    """``amazon_c4_Baby_Products_test`` -> ``Baby_Products``, ``amazon_review_Store_inductive_test`` ->
    ``Store_inductive``; the eval's ``all`` row -> ``overall``."""
    if data_source == "all":
        return "overall"
    return _TEST_SOURCE.match(data_source).group(1)


def method_table(metrics_json: str) -> dict[str, dict]:
    """``{"overall": row, <domain>: row, ...}`` from a recr1.eval metrics.json (overall first)."""
    with open(metrics_json, encoding="utf-8") as f:
        table = json.load(f)["table"]
    rows = {domain_name(source): row for source, row in table.items()}
    if "overall" not in rows:  # a single data source: it is the overall row
        rows = {"overall": next(iter(rows.values())), **rows}
    return {"overall": rows.pop("overall"), **dict(sorted(rows.items()))}


def verdict(test: dict[str, dict], baseline: str = "raw_request") -> dict:
    """Does RL beat SFT and the baseline on overall test NDCG@100, and by what factor over the baseline."""
    ndcg = {m: test[m]["overall"]["ndcg@100"] for m in methods(baseline) if m in test}
    out = {f"{m}_ndcg@100": v for m, v in ndcg.items()}
    if "rl" in ndcg:
        out["rl_beats_sft"] = ndcg["rl"] > ndcg.get("sft", float("inf"))
        out[f"rl_beats_{baseline}"] = ndcg["rl"] > ndcg.get(baseline, float("inf"))
        if ndcg.get(baseline):
            out[f"rl_over_{baseline}"] = round(ndcg["rl"] / ndcg[baseline], 3)
    return out


def markdown_table(test: dict[str, dict]) -> str:
    """One row per (domain, method), overall first."""
    lines = ["| domain | method | n | " + " | ".join(title for _, title in METRICS) + " |",
             "|---|---|---:|" + "---:|" * len(METRICS)]
    domains = list(next(iter(test.values())).keys())
    for domain in domains:
        for method in test:
            row = test.get(method, {}).get(domain)
            if row is None:
                continue
            cells = ["-" if row.get(key) is None else f"{row[key]:.3f}" for key, _ in METRICS]
            name = f"**{domain}**" if domain == "overall" else domain
            lines.append(f"| {name} | {method} | {row.get('n', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(path: str, rl_rows: list[dict], val_key: str, baselines: dict[str, float]) -> None:
    """curves.png: train reward and train NDCG per GRPO step (left), val NDCG@100 per step (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("critic/score/mean", "train reward"), ("reward/ndcg/mean", "train NDCG@k_train")):
        points = curve(rl_rows, key)
        if points:
            steps, values = zip(*points)
            left.plot(steps, values, alpha=0.35, linewidth=0.8)
            left.plot(steps, smooth(values), label=f"{label} (smoothed)", color=left.lines[-1].get_color())
    left.set_xlabel("GRPO step")
    left.set_title("training batches")
    left.legend(loc="lower right")
    left.grid(alpha=0.3)
    points = curve(rl_rows, val_key)
    if points:
        steps, values = zip(*points)
        right.plot(steps, values, marker="o", label="policy (greedy)")
    for (name, value), style in zip(baselines.items(), ("--", ":")):
        right.axhline(value, linestyle=style, color="gray", label=name)
    right.set_xlabel("GRPO step")
    right.set_title("validation NDCG@100")
    right.legend(loc="lower right")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(paths: DemoPaths, settings: DemoSettings, stages: dict[str, dict], rl_rows: list[dict],
                 val_key: str, baseline: str = "raw_request", heading: str | None = None) -> tuple[dict, str]:
    """Write results.json, results.md and curves.png; returns (results, markdown table). ``heading`` is the line
    above the table in results.md (default: the product-search demo's)."""
    test = {m: method_table(os.path.join(paths.eval_dir(m), "metrics.json")) for m in methods(baseline)}
    raw_val = method_table(os.path.join(paths.eval_dir(f"{baseline}_val"), "metrics.json"))["overall"]["ndcg@100"]
    results = {
        "seed": settings.seed,
        "stages": stages,
        "total_seconds": round(sum(st.get("seconds", 0.0) for st in stages.values()), 1),
        "test": test,
        "val_curve": curve(rl_rows, val_key),
        f"val_{baseline}_ndcg@100": raw_val,
        "verdict": verdict(test, baseline),
        "baseline": baseline,
        "settings": dataclasses.asdict(settings),
    }
    with open(paths.results_json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    table = markdown_table(test)
    with open(paths.results_md, "w", encoding="utf-8") as f:
        heading = heading or f"Held-out test categories, BM25 over {settings.items} products"
        f.write(f"{heading}, seed {settings.seed}\n\n{table}\n")
    plot_curves(paths.curves_png, rl_rows, val_key, {baseline.replace("_", " "): raw_val})
    return results, table
