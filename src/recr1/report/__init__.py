"""``python -m recr1.report RUN_DIR``: PNG plots and a markdown summary of a training run from its metrics.jsonl,
offline (no wandb). See build_report."""
from __future__ import annotations

import os

from recr1.report.metrics_file import find_metrics_file, read_metrics
from recr1.report.plots import FIGURES, draw
from recr1.report.summary import markdown

__all__ = ["build_report", "find_metrics_file", "read_metrics"]


def build_report(run: str, out_dir: str | None = None) -> dict:
    """Read ``run``'s metrics.jsonl (a run folder, trainer.default_local_dir, or the file) and write one PNG per
    figure in plots.FIGURES that has data, plus summary.md, into ``out_dir`` (default: ``<folder of the
    metrics file>/report``).

    Returns ``{"metrics_file", "out_dir", "summary", "figures": [file names], "skipped": [(file name, note)]}``.
    Raises FileNotFoundError / ValueError naming the file (and line) when there is nothing usable to read."""
    source = find_metrics_file(run)
    rows = read_metrics(source)
    if not rows:
        raise ValueError(f"{source} holds no metrics rows")
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(source)), "report")
    os.makedirs(out_dir, exist_ok=True)
    figures, skipped = [], []
    for figure in FIGURES:
        panels = figure.build(rows)
        if not panels:
            skipped.append((figure.name, f"nothing to plot: the run logged no {figure.needs}"))
            continue
        draw(os.path.join(out_dir, figure.name), figure.title, panels)
        figures.append((figure.name, figure.title))
    summary = os.path.join(out_dir, "summary.md")
    with open(summary, "w", encoding="utf-8") as f:
        f.write(markdown(source, rows, figures, skipped))
    return {"metrics_file": source, "out_dir": out_dir, "summary": summary, "figures": [n for n, _ in figures],
            "skipped": skipped}
