"""General abilities of a trained policy next to its base model, on lm-eval (as Rec-R1 checked that RL keeps them):

    python -m recr1.general_abilities MODEL [BASE] [--tasks ifeval,gsm8k,mmlu,humaneval] [--limit N] ...

Runs lm-eval's HF backend (``lm_eval.simple_evaluate``) on each model with the same settings and prints one table,
base and checkpoint side by side (value ± stderr and the difference); writes ``general_abilities.md`` and
``general_abilities.json`` (every metric of every task and subtask, the sample counts, the settings) into ``--out``.
MODEL / BASE may be an HF folder, a hub id or a trainer checkpoint (``global_step_N``: its shards are merged once,
see verl.model_merger.hf_model_path).

HumanEval runs the code the model writes, on this machine: lm-eval refuses unless told ``confirm_run_unsafe_code``
and the ``code_eval`` metric unless ``HF_ALLOW_CODE_EVAL=1``. This command does both only with
``--allow-code-execution``, and otherwise stops before loading any model, naming the task and both ways out.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from typing import Optional, Sequence

DEFAULT_TASKS = ("ifeval", "gsm8k", "mmlu", "humaneval")
COLUMNS = ("base", "checkpoint")


class TaskError(ValueError):
    """A task list that cannot run as asked (unknown name, code execution not allowed)."""


def check_tasks(task_manager, tasks: Sequence[str], allow_code_execution: bool) -> list[str]:
    """The names in ``tasks`` that run model-written code (lm-eval's ``unsafe_code``, in the task or any task of a
    group it lists; lm-eval itself refuses any other, later); TaskError naming an unknown task (with close matches),
    or the code-running ones when not allowed."""
    index = task_manager.task_index
    unknown = [name for name in tasks if name not in index]
    if unknown:
        hints = {name: difflib.get_close_matches(name, index.keys(), n=3) for name in unknown}
        raise TaskError("unknown lm-eval task(s): " + "; ".join(
            f"{name!r}" + (f" (did you mean {', '.join(hints[name])}?)" if hints[name] else "") for name in unknown)
            + " -- see `python -m lm_eval ls tasks`; a custom task's folder goes in --include-path")
    unsafe = [name for name in tasks if _runs_code(index, name, set())]
    if unsafe and not allow_code_execution:
        raise TaskError(
            f"{', '.join(unsafe)} execute(s) the code the model writes, on this machine (lm-eval's "
            f"--confirm_run_unsafe_code and HF_ALLOW_CODE_EVAL=1). Allow it with --allow-code-execution "
            f"(ALLOW_CODE_EVAL=1 for scripts/eval/general_abilities.sh), or leave it out of --tasks / TASKS.")
    return unsafe


def _runs_code(index: dict, name: str, seen: set) -> bool:
    entry = index.get(name)
    if entry is None or name in seen:
        return False
    seen.add(name)
    cfg = entry.cfg or {}
    if cfg.get("unsafe_code"):
        return True
    members = cfg.get("task") if "group" in cfg else None
    return isinstance(members, list) and any(isinstance(m, str) and _runs_code(index, m, seen) for m in members)


def task_manager_for(tasks: Sequence[str], include_paths: Sequence[str]):
    """An lm-eval TaskManager that knows ``tasks``: over the ``include_paths`` alone when they hold every task (and
    every member of every group) asked for, else over lm-eval's own tasks too (indexing those takes 5-20 s)."""
    from lm_eval.tasks import TaskManager

    paths = [os.path.abspath(p) for p in include_paths]
    if paths:
        custom = TaskManager(include_path=paths, include_defaults=False)
        if all(_self_contained(custom.task_index, name, set()) for name in tasks):
            return custom
    return TaskManager(include_path=paths or None)


def _self_contained(index: dict, name: str, seen: set) -> bool:
    entry = index.get(name)
    if entry is None or name in seen:
        return entry is not None
    seen.add(name)
    cfg = entry.cfg or {}
    if "group" in cfg:
        members = cfg.get("task")
        members = members if isinstance(members, list) else [members]
        return all(isinstance(m, str) and _self_contained(index, m, seen) for m in members)
    return "task" in cfg  # a task; a tag (no config of its own) is looked up in the full index


def evaluate(model: str, tasks: Sequence[str], task_manager, *, limit: Optional[float], batch_size: str,
             device: str, dtype: str, num_fewshot: Optional[int], apply_chat_template: bool,
             allow_code_execution: bool) -> dict:
    """lm-eval's results for one model: ``{"results", "group_subtasks", "n-samples", "versions", "seconds"}``."""
    import lm_eval

    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": model, "dtype": dtype}, tasks=list(tasks), num_fewshot=num_fewshot,
        batch_size=batch_size, device=device, limit=limit, task_manager=task_manager, log_samples=False,
        apply_chat_template=apply_chat_template, confirm_run_unsafe_code=allow_code_execution)
    keep = ("results", "group_subtasks", "n-samples", "versions")
    return {**{key: _plain(out.get(key, {})) for key in keep}, "seconds": round(time.perf_counter() - start, 1)}


def _plain(value):
    """JSON-safe copy (lm-eval's results hold numpy numbers and 'N/A' strings)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def top_level(run: dict) -> list[str]:
    """The task and group names of ``run`` that are no group's member (MMLU's aggregate, not its 57 subjects)."""
    members = {m for subtasks in run["group_subtasks"].values() for m in subtasks}
    return [name for name in run["results"] if name not in members]


def sample_count(run: dict, name: str) -> Optional[int]:
    """Documents evaluated for a task, or summed over a group's tasks (None when lm-eval did not say)."""
    if name in run["group_subtasks"]:
        counts = [sample_count(run, m) for m in run["group_subtasks"][name]]
        return sum(counts) if counts and None not in counts else None
    n = run["n-samples"].get(name, {})
    return n.get("effective", n.get("original"))


def table_rows(runs: dict) -> list[dict]:
    """One row per (top-level task, metric): ``{"task", "metric", "n", <column>: value, <column> + "_stderr",
    "delta"}`` over the columns of ``runs`` (``{"base": run, "checkpoint": run}`` or one of them)."""
    first = next(iter(runs.values()))
    rows = []
    for task in top_level(first):
        result = first["results"][task]
        for key, value in result.items():
            metric, comma, filt = key.partition(",")  # metric keys are "<metric>,<filter>"; others are metadata
            if not comma or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            n = result.get("sample_count", {}).get(key, sample_count(first, task))  # a group: per metric
            row = {"task": task, "metric": metric if filt == "none" else f"{metric} ({filt})", "n": n}
            for column, run in runs.items():
                result_here = run["results"].get(task, {})
                row[column] = result_here.get(key)
                stderr = result_here.get(f"{metric}_stderr,{filt}")
                row[f"{column}_stderr"] = stderr if isinstance(stderr, (int, float)) else None
            if all(isinstance(row.get(c), (int, float)) for c in COLUMNS):
                row["delta"] = row["checkpoint"] - row["base"]
            rows.append(row)
    return rows


def markdown(rows: list[dict], columns: Sequence[str]) -> str:
    """The side-by-side table: task, metric, n, each column as value ± stderr, and checkpoint - base."""
    def cell(row, column):
        value, stderr = row.get(column), row.get(f"{column}_stderr")
        if value is None:
            return "-"
        return f"{value:.4f}" + (f" ± {stderr:.4f}" if stderr is not None else "")

    both = all(c in columns for c in COLUMNS)
    head = ["task", "metric", "n", *columns] + (["checkpoint - base"] if both else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|" + "---:|" * (len(head) - 3)]
    for row in rows:
        cells = [row["task"], row["metric"], "" if row["n"] is None else str(row["n"])]
        cells += [cell(row, c) for c in columns]
        if both:
            cells.append("-" if row.get("delta") is None else f"{row['delta']:+.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _limit(text: str):
    """--limit: a document count (int) or, below 1, a fraction of each task (float), as lm-eval reads it."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--limit must be > 0, got {text}")
    return int(value) if value >= 1 and value.is_integer() else value


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recr1.general_abilities", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the checkpoint: HF folder, hub id or trainer global_step_N folder")
    parser.add_argument("base", nargs="?", default=None, help="the base model to compare with (same kinds)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                        help="comma-separated lm-eval task or group names (default: %(default)s)")
    parser.add_argument("--limit", type=_limit, default=None,
                        help="documents per task (a fraction if < 1); for quick looks only, numbers are noisier")
    parser.add_argument("--batch-size", default="auto", help="lm-eval batch size, or 'auto' (default)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu ... (default: cuda when there is one)")
    parser.add_argument("--dtype", default="auto", help="model dtype for lm-eval's HF backend (default: config's)")
    parser.add_argument("--num-fewshot", type=int, default=None, help="override every task's few-shot count")
    parser.add_argument("--apply-chat-template", action="store_true",
                        help="wrap prompts in the model's chat template (instruct models, e.g. Qwen2.5-Instruct)")
    parser.add_argument("--include-path", action="append", default=[],
                        help="a folder of custom lm-eval task YAMLs (repeatable)")
    parser.add_argument("--allow-code-execution", action="store_true",
                        help="let code tasks (HumanEval) run the model's code here (sets HF_ALLOW_CODE_EVAL=1)")
    parser.add_argument("--out", default=None, help="output folder (default: outputs/general_abilities/<model name>)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check the tasks, evaluate the checkpoint (and the base), print the table and write the md and json files."""
    args = parse_args(argv)
    from verl.model_merger import hf_model_path

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        print("recr1.general_abilities: --tasks is empty", file=sys.stderr)
        return 2
    name = os.path.basename(os.path.normpath(args.model)) or "model"
    out_dir = args.out or os.path.join("outputs", "general_abilities", name)
    for path in args.include_path:
        if not os.path.isdir(path):
            print(f"recr1.general_abilities: --include-path {path} is not a folder", file=sys.stderr)
            return 2
    task_manager = task_manager_for(tasks, args.include_path)
    try:
        unsafe = check_tasks(task_manager, tasks, args.allow_code_execution)
    except TaskError as err:
        print(f"recr1.general_abilities: {err}", file=sys.stderr)
        return 2
    if unsafe:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"
        print(f"[general_abilities] {', '.join(unsafe)}: running model-written code on this machine "
              f"(--allow-code-execution)", flush=True)
    models = {"checkpoint": args.model} if args.base is None else {"base": args.base, "checkpoint": args.model}
    device = args.device or default_device()
    settings = {"tasks": tasks, "limit": args.limit, "batch_size": args.batch_size, "device": device,
                "dtype": args.dtype, "num_fewshot": args.num_fewshot, "apply_chat_template": args.apply_chat_template,
                "include_path": args.include_path, "allow_code_execution": args.allow_code_execution}
    runs, paths = {}, {}
    for column, model in models.items():
        paths[column] = hf_model_path(model, os.path.join(out_dir, f"{column}_hf_model"))
        print(f"[general_abilities] {column}: {paths[column]} on {', '.join(tasks)} ({device})", flush=True)
        runs[column] = evaluate(paths[column], tasks, task_manager, limit=args.limit, batch_size=args.batch_size,
                                device=device, dtype=args.dtype, num_fewshot=args.num_fewshot,
                                apply_chat_template=args.apply_chat_template,
                                allow_code_execution=args.allow_code_execution)
    rows = table_rows(runs)
    table = markdown(rows, list(runs))
    header = "\n".join(f"- {column}: `{models[column]}`" + (f" (loaded from `{paths[column]}`)"
                                                            if paths[column] != models[column] else "")
                       for column in runs)
    note = f"\n\nlimit: {args.limit} documents per task" if args.limit is not None else ""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "general_abilities.md"), "w", encoding="utf-8") as f:
        f.write(f"{header}\n\n{table}{note}\n")
    with open(os.path.join(out_dir, "general_abilities.json"), "w", encoding="utf-8") as f:
        json.dump({"models": models, "loaded_from": paths, "settings": settings, "table": rows, "runs": runs}, f,
                  indent=2)
    print(f"{header}\n\n{table}{note}\n\n[general_abilities] wrote {out_dir}/general_abilities.{{md,json}}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
