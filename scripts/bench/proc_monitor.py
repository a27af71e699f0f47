"""Run a command as a subprocess and record its wall time and the peak resident memory of its process tree.

Linux only (reads /proc); no third-party dependency, so it runs in the project venv as it is.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence


@dataclass
class ProcessRun:
    """What ``run_monitored`` saw: exit code, wall seconds, peak summed RSS of the tree (MiB), the log path."""

    returncode: int
    wall_s: float
    peak_rss_mib: float
    log_path: str


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return kids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_rss_mib(root_pid: int) -> float:
    """Summed VmRSS (MiB) of ``root_pid`` and all its descendants (shared pages count once per process)."""
    total, todo, seen = 0, [root_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss_kib(pid)
        todo.extend(_children(pid))
    return total / 1024.0


def run_monitored(cmd: Sequence[str], log_path: str, env: Optional[dict] = None, cwd: Optional[str] = None,
                  timeout_s: float = 900.0, poll_s: float = 0.05,
                  on_poll: Optional[Callable[[], None]] = None) -> ProcessRun:
    """Run ``cmd`` with stdout+stderr to ``log_path``, polling the tree's RSS every ``poll_s`` seconds.

    ``on_poll`` (if given) is called at every poll, e.g. to watch a metrics file grow. A run longer than
    ``timeout_s`` is killed (its process group) and reported with returncode -9.
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    peak = 0.0
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            while proc.poll() is None:
                peak = max(peak, tree_rss_mib(proc.pid))
                if on_poll is not None:
                    on_poll()
                if time.perf_counter() - start > timeout_s:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                    break
                time.sleep(poll_s)
        except BaseException:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise
    if on_poll is not None:
        on_poll()
    return ProcessRun(returncode=proc.returncode, wall_s=time.perf_counter() - start, peak_rss_mib=peak,
                      log_path=log_path)
