"""A searcher worker as a plain subprocess (the pool's backend when Ray is not running).

The driver starts ``python -m recr1.retrieval.pool_subprocess IN_FD OUT_FD`` with two pipes of its own (stdin and
stdout stay the terminal's, so whatever the JVM prints cannot corrupt the channel) and exchanges pickled messages:

    driver -> worker: ("load", kind, index, settings) | ("search", seq, queries, k) | ("docs", seq, doc_ids)
                      | ("close",)
    worker -> driver: ("ok", seq, result) | ("error", seq, exception, traceback text)

A new process is started with ``subprocess`` rather than ``multiprocessing``, so it never re-imports the driver's
``__main__`` (a hydra entry point, a benchmark script). The worker exits when the driver closes its end of the pipe,
so it also goes when the driver is killed: no orphan searchers.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from multiprocessing.connection import Connection, wait

from recr1.retrieval.pool_protocol import SearcherHost, WorkerDied, WorkerFailed, picklable_error

CLOSE_TIMEOUT_S = 10.0


def _package_root() -> str:
    """The folder holding the ``recr1`` package (so the child finds it however the driver did)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SubprocessWorker:
    """Driver-side handle of one worker subprocess.

    Args:
        index: the worker's number in its pool (for messages).
        kind, index_dir, settings: what :func:`~recr1.retrieval.searcher.load_searcher` gets in the worker.
    """

    backend = "subprocess"

    def __init__(self, index: int, kind: str, index_dir: str, settings: dict):
        self.index, self.kind, self.index_dir, self.settings = index, kind, index_dir, dict(settings)
        self.info: dict = {}
        self._proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._seq = 0
        self._pending: deque[int] = deque()  # sequence numbers of the batches sent and not yet collected

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def launch(self) -> None:
        """Start the process and ask it to load the searcher (returns at once; :meth:`wait_ready` waits)."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send = Connection(to_child_w, readable=False)
        self._recv = Connection(from_child_r, writable=False)
        self._post(("load", self.kind, self.index_dir, self.settings))

    def wait_ready(self) -> dict:
        """Wait for the searcher to load; returns its description (pid, num_docs, query_key...).

        Raises:
            WorkerDied: the process exited while loading.
            WorkerFailed: loading raised (``.error`` is the exception the worker raised).
        """
        self.info = self._reply(seq=None)
        return self.info

    def submit(self, queries: list[str], k: int) -> None:
        """Send one batch (returns at once; batches queue up in the worker and are answered in order). Raises
        WorkerDied."""
        self._seq += 1
        self._pending.append(self._seq)
        self._post(("search", self._seq, queries, k))

    def submit_docs(self, doc_ids: list[str]) -> None:
        """Ask for the catalog text of ``doc_ids`` (returns at once; :meth:`collect` gives the texts in turn). Raises
        WorkerDied."""
        self._seq += 1
        self._pending.append(self._seq)
        self._post(("docs", self._seq, doc_ids))

    def collect(self):
        """The answer to the oldest request not yet collected: (encoded hits, stats delta) for a batch, the list of
        texts for :meth:`submit_docs`. Raises WorkerDied or WorkerFailed."""
        return self._reply(seq=self._pending.popleft())

    def abandon(self) -> None:
        """Forget the batches in flight (their answers are skipped when they come)."""
        self._pending.clear()

    @staticmethod
    def wait_any(workers: list[SubprocessWorker]) -> list[SubprocessWorker]:
        """The workers among ``workers`` with an answer (or an end of channel) to read now; blocks until one has."""
        by_conn = {worker._recv: worker for worker in workers}
        return [by_conn[conn] for conn in wait(list(by_conn))]

    def _post(self, message) -> None:
        try:
            self._send.send(message)
        except (OSError, EOFError) as exc:  # BrokenPipeError: the process is gone
            raise WorkerDied(self._death_note(exc)) from exc

    def _reply(self, seq):
        while True:
            try:
                message = self._recv.recv()
            except (OSError, EOFError) as exc:
                raise WorkerDied(self._death_note(exc)) from exc
            status, got_seq = message[0], message[1]
            if seq is not None and got_seq != seq:  # the answer to a batch that was abandoned (an interrupted call)
                continue
            if status == "ok":
                return message[2]
            raise WorkerFailed(message[2], message[3])

    def _death_note(self, exc: BaseException) -> str:
        code = None
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        how = f"exit code {code}" if code is not None and code >= 0 else \
            f"killed by signal {-code}" if code is not None else f"channel closed ({type(exc).__name__})"
        return f"searcher worker {self.index} (pid {self.pid}) is gone: {how}"

    def close(self) -> None:
        """Ask the process to exit, wait for it (killing it after CLOSE_TIMEOUT_S), release the pipes."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._send.send(("close",))
        except (OSError, EOFError):
            pass
        for conn in (self._send, self._recv):
            conn.close()
        try:
            proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_all(inbox: Connection, messages: queue.Queue) -> None:
    """Move every message from the driver into ``messages`` as it arrives (None when the driver goes away)."""
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            messages.put(None)
            return
        messages.put(message)
        if message[0] == "close":
            return


def serve(in_fd: int, out_fd: int) -> None:
    """The worker's loop: answer the driver's messages until it says close or goes away.

    A thread reads the driver's messages as they come: the driver may send the next batch while this process is
    writing a long answer, and if neither read, both would wait on a full pipe forever.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it closes us
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    messages: queue.Queue = queue.Queue()
    threading.Thread(target=_read_all, args=(inbox, messages), name="inbox", daemon=True).start()
    host = SearcherHost()
    try:
        while True:
            message = messages.get()
            if message is None or message[0] == "close":
                return  # the driver is gone, or done with us
            seq = None
            try:
                if message[0] == "load":
                    reply = ("ok", None, host.load(*message[1:]))
                elif message[0] == "docs":
                    _, seq, doc_ids = message
                    reply = ("ok", seq, host.doc_texts(doc_ids))
                else:
                    _, seq, queries, k = message
                    reply = ("ok", seq, host.search(queries, k))
            except Exception as exc:
                reply = ("error", seq, picklable_error(exc), traceback.format_exc())
            try:
                outbox.send(reply)
            except (BrokenPipeError, OSError):
                return
    finally:
        host.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
