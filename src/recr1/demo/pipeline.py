"""Run the demo's stages in order, skipping each one whose outputs are already there and up to date.

A stage re-runs when its stamp is missing, when a setting it (or an earlier stage) depends on changed, or
when its outputs fail their check; every later stage then re-runs too. A GRPO run that was interrupted
resumes from its last checkpoint when its settings did not change.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from recr1.demo import seqrec_stages as sq
from recr1.demo import stages as st
from recr1.demo.paths import DemoPaths
from recr1.demo.report import write_report
from recr1.demo.runner import StageFailed, tail
from recr1.demo.settings import DemoSettings
from recr1.demo.stamps import chain_key, read_stamp, write_stamp


@dataclass(frozen=True)
class Stage:
    """One step of the demo: what it does, what it depends on, how to run and check it."""

    name: str
    title: str
    depends_on: tuple[str, ...]  # DemoSettings fields its output depends on
    run: Callable[..., str]
    valid: Callable[[st.StageContext], bool]
    in_process: bool = True  # output to its log file through fd redirection
    resumable: bool = False


STAGES = (
    Stage("catalog", "synthetic catalog", ("items", "requests", "data_seed"), st.run_catalog, st.valid_catalog),
    Stage("index", "Lucene index", (), st.run_index, st.valid_index),
    Stage("prepare", "prepare parquet", ("val_size", "prompt_template"), st.run_prepare, st.valid_prepare),
    Stage("policy", "tiny policy", ("vocab_words", "layers", "hidden", "heads", "seed"), st.run_policy,
          st.valid_policy),
    Stage("sft_data", "SFT data", ("naive_words", "sft_swapped_copies", "rl_val_rows", "eval_rows"), st.run_sft_data,
          st.valid_sft_data),
    Stage("sft", "SFT warm start", ("sft_steps", "sft_batch", "sft_lr", "sft_warmup"), st.run_sft, st.valid_sft,
          in_process=False),
    Stage("rl", "GRPO", ("rl_steps", "rl_prompts", "rl_n", "rl_lr", "rl_temperature", "rl_filter_groups",
                         "response_length", "test_freq", "dedup_terms", "extra_rl_overrides"), st.run_rl, st.valid_rl,
          in_process=False, resumable=True),
    Stage("eval", "evaluation", (), st.run_eval, st.valid_eval),
)

# Sequential recommendation: its own data, index, SFT pairs and evaluation; the policy, SFT and GRPO stages are shared.
_SHARED = {stage.name: stage for stage in STAGES}
SEQREC_STAGES = (
    Stage("catalog", "synthetic reviews", ("task", "items", "users", "data_seed"), sq.run_catalog, sq.valid_catalog),
    Stage("prepare", "prepare parquet", ("max_history",), sq.run_prepare, sq.valid_prepare),
    Stage("index", "Lucene index", (), sq.run_index, sq.valid_index),
    _SHARED["policy"],
    Stage("sft_data", "SFT data", ("naive_words", "sft_word_keep", "rl_val_rows", "eval_rows"), sq.run_sft_data,
          st.valid_sft_data),
    _SHARED["sft"],
    dataclasses.replace(_SHARED["rl"], run=sq.run_rl),
    Stage("eval", "evaluation", (), sq.run_eval, sq.valid_eval),
)


@dataclass(frozen=True)
class DemoTask:
    """What differs between the demo's tasks: the stages, the no-model baseline, the RL validation source."""

    stages: tuple[Stage, ...]
    baseline: str
    val_source: str
    heading: str  # what the test table shows


TASKS = {
    "search": DemoTask(STAGES, "raw_request", st.VAL_SOURCE, "Test requests of the held-out categories, BM25 over "
                                                             "{items} products"),
    "seqrec": DemoTask(SEQREC_STAGES, sq.BASELINE, sq.val_source(),
                       "Next-item test histories (each user's last item; _inductive: users held out of training), "
                       "BM25 over the synthetic category's items"),
}


@contextlib.contextmanager
def output_to(log_path: str):
    """Send this process's stdout and stderr (Python, C and the JVM alike) to ``log_path``."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class Console:
    """Progress lines on the terminal, even while fds 1 and 2 point to a stage's log."""

    def __init__(self):
        self.stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")

    def print(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def run_pipeline(settings: DemoSettings, out: str, verbose: bool = False, console: Console | None = None) -> dict:
    """Run (or skip) every stage, then write the report; returns results.json's content."""
    if settings.task not in TASKS:
        raise ValueError(f"unknown demo task {settings.task!r}; known: {sorted(TASKS)}")
    task = TASKS[settings.task]
    paths = DemoPaths(os.path.abspath(out))
    console = console or Console()
    if settings.threads > 0:
        import torch

        torch.set_num_threads(settings.threads)
    total = len(task.stages) + 1
    stage_times: dict[str, dict] = {}
    key = "demo-v1"
    redo_rest = False
    start = time.time()
    for number, stage in enumerate(task.stages, start=1):
        label = f"[demo {number}/{total}] {stage.title:<18s}"
        ctx = st.StageContext(settings, paths, say=lambda text, label=label: console.print(f"{label}   {text}"),
                              verbose=verbose, val_source=task.val_source)
        key = chain_key(key, settings.fingerprint(list(stage.depends_on)))
        stamp = read_stamp(paths.stamp(stage.name))
        if not redo_rest and stamp and stamp["key"] == key and stamp.get("state") == "done" and stage.valid(ctx):
            stage_times[stage.name] = {"seconds": stamp["seconds"], "summary": stamp["summary"], "skipped": True}
            console.print(f"{label} up to date: {stamp['summary']}")
            continue
        redo_rest = True
        resume = stage.resumable and stamp is not None and stamp["key"] == key and stamp.get("state") == "started"
        console.print(f"{label} {'resuming' if resume else 'running'}...")
        write_stamp(paths.stamp(stage.name), key, 0.0, "", state="started")
        t0 = time.time()
        try:
            if stage.in_process and not verbose:
                with output_to(paths.log(stage.name)):
                    summary = stage.run(ctx)
            else:
                summary = stage.run(ctx, resume=resume) if stage.resumable else stage.run(ctx)
        except StageFailed as e:
            raise SystemExit(f"{label} FAILED\n{e}") from None
        except Exception as e:
            log_tail = tail(paths.log(stage.name)) if stage.in_process and not verbose else ""
            raise SystemExit(f"{label} FAILED: {type(e).__name__}: {e}\n"
                             f"{'last lines of ' + paths.log(stage.name) + ':' if log_tail else ''}\n{log_tail}") from e
        seconds = time.time() - t0
        if not stage.valid(ctx):
            raise SystemExit(f"{label} FAILED: finished but its outputs are incomplete (see {paths.log(stage.name)})")
        write_stamp(paths.stamp(stage.name), key, seconds, summary)
        stage_times[stage.name] = {"seconds": round(seconds, 1), "summary": summary, "skipped": False}
        console.print(f"{label} done in {_duration(seconds)}: {summary}")

    label = f"[demo {total}/{total}] {'report':<18s}"
    heading = task.heading.format(items=settings.items)
    base = task.baseline
    results, table = write_report(paths, settings, stage_times, st.read_metrics(paths.metrics_jsonl("rl")),
                                  st.val_ndcg_key(task.val_source), base, heading)
    console.print(f"{label} wrote {paths.results_json}, {paths.results_md}, {paths.curves_png}")
    console.print()
    console.print(f"{heading}, seed {settings.seed}:")
    console.print(table)
    v = results["verdict"]
    console.print()
    console.print(f"RL vs SFT: {v['rl_ndcg@100']:.3f} vs {v['sft_ndcg@100']:.3f} NDCG@100"
                  f" ({'better' if v['rl_beats_sft'] else 'NOT better'}); RL vs {base.replace('_', ' ')}: "
                  f"{v['rl_ndcg@100']:.3f} vs {v[f'{base}_ndcg@100']:.3f}"
                  f" ({v.get(f'rl_over_{base}', float('nan')):.2f}x)")
    console.print("Stage times: " + ", ".join(f"{n} {_duration(t['seconds'])}" + (" (cached)" if t["skipped"] else "")
                                               for n, t in stage_times.items())
                  + f"; this run {_duration(time.time() - start)}")
    return results


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 90 else f"{seconds / 60:.1f}min"
