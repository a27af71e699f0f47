"""Run a trainer as a child process: its full output goes to a log file, a short progress line to the console.

The trainers write one JSON object per step to ``metrics.jsonl``; the demo follows that file instead of the
child's console, so progress stays one line every few seconds however chatty the child is.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence


class StageFailed(RuntimeError):
    """A child process failed; the message holds the command, the exit code and the end of its log."""


def tail(path: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class JsonlFollower:
    """Reads the rows appended to a JSONL file since the last call (a partial last line waits for the next)."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0

    def new_rows(self) -> list[dict]:
        if not os.path.isfile(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        rows = []
        for line in complete.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


def command_text(cmd: Sequence[str]) -> str:
    """A shell-pasteable rendering of ``cmd`` with the interpreter shown as ``python``."""
    shown = ["python" if i == 0 and arg == sys.executable else arg for i, arg in enumerate(cmd)]
    return " ".join(shlex.quote(a) for a in shown)


def run_child(
    cmd: Sequence[str],
    log_path: str,
    on_rows: Callable[[list[dict]], None] | None = None,
    metrics_path: str | None = None,
    verbose: bool = False,
    env: dict | None = None,
    poll_seconds: float = 1.0,
) -> float:
    """Run ``cmd`` to completion; returns its wall time in seconds.

    Output goes to ``log_path`` (and to the console too when ``verbose``). New rows of ``metrics_path`` are
    passed to ``on_rows`` about every ``poll_seconds``. Raises StageFailed with the log's tail on a non-zero exit.
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    follower = JsonlFollower(metrics_path) if metrics_path else None
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {command_text(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE if verbose else log, stderr=subprocess.STDOUT,
                                env=child_env, text=True, bufsize=1)
        try:
            while True:
                if verbose:
                    line = proc.stdout.readline()
                    if line:
                        log.write(line)
                        sys.stdout.write("    " + line)
                        sys.stdout.flush()
                        continue
                    done = proc.poll() is not None
                else:
                    try:
                        proc.wait(timeout=poll_seconds)
                        done = True
                    except subprocess.TimeoutExpired:
                        done = False
                if follower is not None and on_rows is not None:
                    rows = follower.new_rows()
                    if rows:
                        on_rows(rows)
                if done:
                    break
        finally:
            # whatever ends the wait (Ctrl-C, SIGTERM turned into an exception, a bug), never orphan the child:
            # an orphaned trainer keeps its cores and memory
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if proc.returncode != 0:
        raise StageFailed(f"command failed with exit code {proc.returncode}:\n  {command_text(cmd)}\n"
                          f"last lines of {log_path}:\n{tail(log_path)}")
    return time.time() - start
