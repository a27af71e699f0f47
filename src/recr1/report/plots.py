"""The run report's figures: what each PNG shows (which metric keys), and how it is drawn (matplotlib, Agg).

Each figure is built from whatever metrics the run logged: a figure whose keys are all missing is skipped with a
note naming them, a panel whose key is missing is left out. Keys are found by pattern, so new validation metrics
(``val-core/<data_source>/<metric>``) and reward extras (``reward/<key>/mean``) appear without code changes.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Optional

from recr1.report.series import curve, keys_matching, smooth
from verl.utils.tracking import TIMING_FIELDS

SMOOTH_FROM = 30  # series with at least this many points get a smoothed line over the raw one
_VAL = re.compile(r"^val-(core|aux)/(?P<source>[^/]+)/(?P<metric>.+)$")


@dataclasses.dataclass
class Line:
    label: str
    points: list  # [[step, value], ...]
    band: Optional[tuple] = None  # (low points, high points) drawn as a shaded range


@dataclasses.dataclass
class Panel:
    title: str
    lines: list  # [Line]
    stacked: bool = False  # lines drawn as a stacked area (phases of a step)


@dataclasses.dataclass
class Figure:
    name: str  # file name
    title: str
    build: Callable[[list], list]  # rows -> [Panel]
    needs: str  # what a run must log for this figure (for the skip note)


def _line(rows: list, key: str, label: Optional[str] = None, band: bool = False) -> Optional[Line]:
    points = curve(rows, key)
    if not points:
        return None
    low_high = None
    if band and key.endswith("/mean"):
        stem = key[: -len("mean")]
        low, high = curve(rows, stem + "min"), curve(rows, stem + "max")
        if low and high and len(low) == len(high) == len(points):
            low_high = (low, high)
    return Line(label or key, points, low_high)


def _panel(title: str, lines: list) -> list:
    lines = [line for line in lines if line is not None]
    return [Panel(title, lines)] if lines else []


def reward_panels(rows: list) -> list:
    """Training reward: the task score and the reward after KL shaping, each with its batch min-max range."""
    return (_panel("training score (critic/score/mean)", [_line(rows, "critic/score/mean", "score", band=True)])
            + _panel("training reward (critic/rewards/mean, after KL in reward)",
                     [_line(rows, "critic/rewards/mean", "reward", band=True)] if _differs(
                         rows, "critic/rewards/mean", "critic/score/mean") else []))


def loss_panels(rows: list) -> list:
    """The SFT trainer's cross-entropy (train/loss per step, val/loss per validation) and learning rate."""
    return (_panel("cross-entropy", [_line(rows, "train/loss", "train"), _line(rows, "val/loss", "val")])
            + _panel("learning rate", [_line(rows, "train/lr", "train/lr")]))


def _differs(rows: list, a: str, b: str) -> bool:
    pa, pb = curve(rows, a), curve(rows, b)
    return bool(pa) and pa != pb


def _validation_panels(rows: list, keep: Callable[[str], bool]) -> list:
    """One panel per validation metric name, one line per data source (val-core before val-aux)."""
    by_metric: dict[str, list] = {}
    for key in keys_matching(rows, _VAL.pattern):
        match = _VAL.match(key)
        if keep(match.group("metric")):
            title = f"val-{match.group(1)}/*/{match.group('metric')}"
            by_metric.setdefault(title, []).append(_line(rows, key, match.group("source")))
    ordered = sorted(by_metric, key=lambda t: (not t.startswith("val-core"), t))
    return [Panel(title, by_metric[title]) for title in ordered]


def _is_ndcg(metric: str) -> bool:
    return metric.startswith("ndcg")


def val_ndcg_panels(rows: list) -> list:
    """Validation NDCG per data source: val-core/<ds>/ndcg@k (retrieval metrics) and val-aux/<ds>/ndcg/mean."""
    return _validation_panels(rows, _is_ndcg)


def validation_panels(rows: list) -> list:
    """Every other validation metric (reward/mean, recall@k, mrr, format_ok, ...) per data source; the constant k of
    the reward is left out."""
    return _validation_panels(rows, lambda m: not _is_ndcg(m) and m not in ("k/mean",))


def response_length_panels(rows: list) -> list:
    return (_panel("response length (tokens)", [_line(rows, "response_length/mean", "mean", band=True)])
            + _panel("responses cut at the length limit (response_length/clip_ratio)",
                     [_line(rows, "response_length/clip_ratio", "clip ratio")]))


def entropy_panels(rows: list) -> list:
    return _panel("policy entropy (actor/entropy)", [_line(rows, "actor/entropy", "entropy")])


def kl_panels(rows: list) -> list:
    """KL: the clipped-ratio KL of each update (ppo_kl), the KL loss to the reference, the KL in the reward."""
    panels = []
    for key, title in (("actor/ppo_kl", "old-vs-new policy KL (actor/ppo_kl)"),
                       ("actor/kl_loss", "KL to the reference, as a loss (actor/kl_loss)"),
                       ("actor/reward_kl_penalty", "KL to the reference, in the reward (actor/reward_kl_penalty)"),
                       ("actor/reward_kl_penalty_coeff", "KL-in-reward coefficient")):
        if not any(v for _, v in curve(rows, key)):
            continue  # e.g. kl_loss with use_kl_loss off, ppo_kl with one update per batch: a flat zero says nothing
        panels += _panel(title, [_line(rows, key, key.split("/")[-1])])
    return panels


def timing_panels(rows: list) -> list:
    """Seconds per step stacked by the trainer's top-level phases (tracking.TIMING_FIELDS), the step total on top;
    what the phases leave of the step is 'other'."""
    phases = [name for name in TIMING_FIELDS if curve(rows, f"timing_s/{name}")]
    steps = [row["step"] for row in rows if row.get("timing_s/step") is not None]
    if not steps:
        return []
    by_step = {row["step"]: row for row in rows}
    lines = []
    for name in phases:
        lines.append(Line(name, [[s, by_step[s].get(f"timing_s/{name}") or 0.0] for s in steps]))
    other = [[s, max(by_step[s]["timing_s/step"] - sum(by_step[s].get(f"timing_s/{n}") or 0.0 for n in phases), 0.0)]
             for s in steps]
    lines.append(Line("other", other))
    lines.append(Line("step (timing_s/step)", [[s, by_step[s]["timing_s/step"]] for s in steps]))
    return [Panel("seconds per step, by phase", lines, stacked=True)]


def reward_extra_panels(rows: list) -> list:
    """The task's per-sample extras averaged per step (reward/<key>/mean, e.g. ndcg, format_ok, query statistics)
    and its categorical fractions (reward/<key>/<value>, e.g. the reasons of each score)."""
    families: dict[str, list] = {}  # reward/query_op_and/mean, reward/query_op_or/mean, ... share one panel
    for key in keys_matching(rows, r"reward/[^/]+/mean"):
        if key != "reward/k/mean":
            families.setdefault(key.split("/")[1].rpartition("_")[0] or key, []).append(key)
    panels = []
    for stem, keys in families.items():
        if len(keys) > 2:
            lines = [_line(rows, k, k.split("/")[1][len(stem) + 1:]) for k in keys]
            panels.append(Panel(f"reward/{stem}_*/mean", lines))
        else:
            panels += [Panel(k, [_line(rows, k, k.split("/")[1])]) for k in keys]
    fractions: dict[str, list] = {}
    for key in keys_matching(rows, r"reward/[^/]+/[^/]+"):
        name, value = key.split("/")[1:]
        if value not in ("mean", "max", "min"):
            fractions.setdefault(name, []).append(key)
    for name, keys in sorted(fractions.items()):
        # a value that no sample of a step had is not logged at that step: its fraction there is 0
        steps = [row for row in rows if any(row.get(k) is not None for k in keys)]
        panels.append(Panel(f"reward/{name}/* (fraction of samples)",
                            [Line(k.split("/")[-1], [[r["step"], r.get(k) or 0.0] for r in steps]) for k in keys]))
    return panels


FIGURES = (
    Figure("reward.png", "training reward", reward_panels, "critic/score/mean"),
    Figure("loss.png", "SFT loss", loss_panels, "train/loss or val/loss (the SFT trainer's)"),
    Figure("val_ndcg.png", "validation NDCG per data source", val_ndcg_panels, "val-core|val-aux/<ds>/ndcg*"),
    Figure("validation.png", "other validation metrics per data source", validation_panels, "val-core|val-aux/<ds>/*"),
    Figure("response_length.png", "response length", response_length_panels, "response_length/mean"),
    Figure("entropy.png", "entropy", entropy_panels, "actor/entropy"),
    Figure("kl.png", "KL", kl_panels, "nonzero actor/ppo_kl, actor/kl_loss or actor/reward_kl_penalty"),
    Figure("timing.png", "time per phase", timing_panels, "timing_s/step"),
    Figure("reward_extras.png", "reward extras", reward_extra_panels, "reward/<key>/mean or reward/<key>/<value>"),
)


def draw(path: str, title: str, panels: list) -> None:
    """Write ``panels`` into one PNG at ``path``: a grid of axes (up to 3 a row), steps on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 if len(panels) == 1 else 2 if len(panels) <= 4 else 3
    grid_rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(5.5 * cols, 3.6 * grid_rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        (_draw_stacked if panel.stacked else _draw_lines)(ax, panel)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw_lines(ax, panel: Panel) -> None:
    for line in panel.lines:
        steps, values = zip(*line.points)
        many = len(values) >= SMOOTH_FROM
        marker = None if len(values) > 20 else "o"
        # a long series: the raw values thin and faint, the label on its moving average
        ax.plot(steps, values, alpha=0.3 if many else 1.0, linewidth=0.7 if many else 1.5, marker=marker,
                markersize=3, label=None if many else line.label)
        color = ax.lines[-1].get_color()
        if many:
            ax.plot(steps, smooth(values), color=color, label=line.label)
        if line.band and not many:  # over hundreds of steps the per-batch range is noise that hides the mean
            ax.fill_between([s for s, _ in line.band[0]], [v for _, v in line.band[0]], [v for _, v in line.band[1]],
                            color=color, alpha=0.12, label=f"{line.label} min-max")


def _draw_stacked(ax, panel: Panel) -> None:
    *parts, total = panel.lines
    steps = [s for s, _ in total.points]
    ax.stackplot(steps, *[[v for _, v in line.points] for line in parts], labels=[line.label for line in parts],
                 alpha=0.8)
    ax.plot(steps, [v for _, v in total.points], color="black", linewidth=0.8, label=total.label)
    ax.set_ylabel("seconds")
