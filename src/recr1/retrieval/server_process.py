"""Start the retrieval server (:mod:`recr1.retrieval.serve`) as a child process and wait until it answers.

    with ServerProcess("data/index/lucene", "bm25", log_path="serve.log") as server:
        searcher = RemoteSearcher(server.url)

For tests, benchmarks and single-machine scripts; on a cluster the server is started by hand or by the job script.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from recr1.retrieval.serve import READY_PREFIX


class ServerProcess:
    """``python -m recr1.retrieval.serve`` in a child process.

    Args:
        index, retriever: what to serve.
        port: 0 picks a free port; :attr:`url` names the one taken.
        log_path: the server's stdout and stderr go here (required: a pipe nobody reads would block it).
        args: more command-line flags, e.g. ``["--cache-size", "0"]``.
        ready_timeout: seconds to wait for the index to load.
    """

    def __init__(self, index: str, retriever: str = "bm25", *, log_path: str, port: int = 0, host: str = "127.0.0.1",
                 args: list[str] | None = None, ready_timeout: float = 120.0):
        self.command = [sys.executable, "-m", "recr1.retrieval.serve", "--index", str(index), "--retriever",
                        retriever, "--host", host, "--port", str(port), *(args or [])]  # fmt: skip
        self.log_path, self.ready_timeout = log_path, ready_timeout
        self.process: subprocess.Popen | None = None
        self.url: str | None = None

    def start(self) -> ServerProcess:
        """Start the server and wait for its ready line (raises RuntimeError with the log's tail if it exits or
        stays silent past ``ready_timeout``)."""
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            url = self._ready_url()
            if url:
                self.url = url
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the retrieval server exited with code {self.process.returncode} before it was "
                                   f"ready: {' '.join(self.command)}\n{self.log_tail()}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the retrieval server was not ready within {self.ready_timeout:.0f} s: "
                           f"{' '.join(self.command)}\n{self.log_tail()}")

    def _ready_url(self) -> str | None:
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].split()[0]
        return None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote."""
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill it if it does not exit within ``timeout`` seconds)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
