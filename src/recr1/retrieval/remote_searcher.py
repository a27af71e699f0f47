"""A searcher that asks a retrieval server (:mod:`recr1.retrieval.serve`) instead of opening an index itself.

    searcher = RemoteSearcher("http://cpu-node:8000")      # or get_searcher("remote", url=...)
    searcher.batch_search(["red wool socks"], k=100)       # exactly what the server's searcher returns

Queries go in chunks of at most the server's ``max_batch`` (or a smaller ``max_batch`` of this client), each
distinct query once. A request that fails (connection refused or reset, the server restarting, a 5xx answer)
is sent once more, as soon as the server answers its health check again (within ``retry_wait`` seconds); a
second failure raises :class:`RemoteSearchError` naming the URL and the batch size. A reward must never turn a
lost server into scores of 0. A request that times out is not repeated: the server is alive but slow, and a
second copy would only queue behind the first. :meth:`RemoteSearcher.doc_texts` (the catalog text of a few ids,
for the validation tables) asks the server's /docs with the same one retry.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from recr1.retrieval.base import Hit, Searcher
from recr1.retrieval.search_protocol import (
    DOCS_PATH,
    HEALTH_PATH,
    MAX_DOC_IDS,
    SEARCH_PATH,
    decode_hits,
    decode_texts,
    docs_request_body,
    parse_server_timing,
    request_body,
)

RETRY_STAT = "remote_retry"


class RemoteSearchError(RuntimeError):
    """The retrieval server cannot be reached, or answered with an error or something that is not hits."""


class RemoteSearcher(Searcher):
    """The :class:`Searcher` interface over HTTP.

    Args:
        url: the server, e.g. ``http://localhost:8000``.
        timeout: seconds to wait for one request's answer (a search of 1024 queries at k=1000 on a big index takes
            seconds; several jobs on one server queue behind each other).
        max_batch: most queries per request; None takes the server's limit.
        retry_wait: after a failed request, seconds to wait for the server's health check before the one retry.
        connect_timeout: seconds to wait for a connection.

    Raises:
        RemoteSearchError: the server does not answer its health check (the message names the URL and why).
    """

    kind = "remote"

    def __init__(self, url: str, timeout: float = 300.0, max_batch: int | None = None, retry_wait: float = 30.0,
                 connect_timeout: float = 10.0):
        super().__init__()
        import httpx

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url={url!r}; expected the retrieval server's address, e.g. http://localhost:8000")
        for name, value, least in (("timeout", timeout, 1e-3), ("retry_wait", retry_wait, 0.0),
                                   ("connect_timeout", connect_timeout, 1e-3)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
                raise ValueError(f"{name}={value!r}; expected seconds{' > 0' if least else ' >= 0'}")
        if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
            raise ValueError(f"max_batch={max_batch!r}; expected a positive number of queries per request or None")
        self.url = url.rstrip("/")
        self.timeout, self.retry_wait = float(timeout), float(retry_wait)
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(self.timeout, connect=connect_timeout))
        info = self.health()
        self.retriever, self.index, self.max_k = info.get("retriever"), info.get("index"), info.get("max_k")
        self.server_settings = info.get("settings", {})
        self.max_query_terms = info.get("max_query_terms")  # the server's cap on terms per query (None: none)
        server_batch = int(info.get("max_batch") or max_batch or 1)
        self.max_batch = min(max_batch, server_batch) if max_batch else server_batch
        self.max_doc_ids = int(info.get("max_doc_ids") or MAX_DOC_IDS)
        # Seconds spent, summed over requests: "request" (round trip, the server's share included), "decode"
        # (reading the answer here), and the server's own phases from its Server-Timing header ("server_search",
        # "server_encode").
        self.timings: Counter[str] = Counter()

    # ---- health -----------------------------------------------------------------------------------

    def health(self) -> dict:
        """The server's /health answer (retriever, index, num_docs, max_batch, max_k, settings).

        Raises:
            RemoteSearchError: no answer, an error status, or not a health answer; the message names the URL.
        """
        try:
            response = self._client.get(HEALTH_PATH, timeout=min(self.timeout, 30.0))
        except self._httpx.HTTPError as e:
            raise RemoteSearchError(f"retrieval server {self.url} does not answer {HEALTH_PATH}: {_reason(e)}") from e
        if response.status_code != 200:
            raise RemoteSearchError(f"retrieval server {self.url} answered {HEALTH_PATH} with HTTP "
                                    f"{response.status_code}: {response.text[:300]}")
        try:
            info = response.json()
            int(info["num_docs"])
        except (ValueError, KeyError, TypeError) as e:
            raise RemoteSearchError(f"{self.url}{HEALTH_PATH} is not a Rec-R1 retrieval server's health answer: "
                                    f"{response.text[:300]!r}") from e
        return info

    @property
    def num_docs(self) -> int:
        """Documents in the server's index, asked afresh (a restarted server may serve a rebuilt index)."""
        return int(self.health()["num_docs"])

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.retry_wait
        while True:
            try:
                self.health()
                return
            except RemoteSearchError:
                if time.monotonic() >= deadline:
                    return  # the retry itself will fail and say why
                time.sleep(min(0.2, self.retry_wait))

    # ---- search -----------------------------------------------------------------------------------

    def _post_once(self, queries: list[str], k: int) -> list[list[Hit]]:
        """One /search request; raises httpx errors and _ServerFault for the caller to judge."""
        t0 = time.perf_counter()
        response = self._client.post(SEARCH_PATH, content=request_body(queries, k),
                                     headers={"content-type": "application/json"})  # fmt: skip
        t1 = time.perf_counter()
        if response.status_code >= 500:
            raise _ServerFault(f"HTTP {response.status_code}: {response.text[:300]}")
        if response.status_code != 200:
            raise RemoteSearchError(f"retrieval server {self.url} refused a batch of {len(queries)} queries (k={k}): "
                                    f"HTTP {response.status_code}: {response.text[:500]}")
        try:
            hits = decode_hits(response.json(), len(queries))
        except (ValueError, TypeError) as e:
            raise RemoteSearchError(f"retrieval server {self.url} answered a batch of {len(queries)} queries (k={k}) "
                                    f"with something that is not their hits: {e}") from e
        self.timings["request"] += t1 - t0
        self.timings["decode"] += time.perf_counter() - t1
        for phase, seconds in parse_server_timing(response.headers.get("server-timing")).items():
            self.timings[f"server_{phase}"] += seconds
        return hits

    def _post(self, queries: list[str], k: int) -> list[list[Hit]]:
        """One chunk, retried once after a connection failure or a 5xx answer."""
        return self._retry_once(f"a batch of {len(queries)} queries (k={k})", lambda: self._post_once(queries, k))

    def _retry_once(self, what: str, request):
        """``request()``, sent once more after a connection failure or a 5xx answer (see the module docstring)."""
        first = None
        for attempt in range(2):
            try:
                return request()
            except (self._httpx.ReadTimeout, self._httpx.WriteTimeout) as e:
                raise RemoteSearchError(f"retrieval server {self.url} did not answer {what} within "
                                        f"{self.timeout:g} s (the searcher's timeout): {_reason(e)}") from e
            except (self._httpx.TransportError, _ServerFault) as e:
                if attempt == 1:
                    raise RemoteSearchError(f"retrieval server {self.url} failed {what} twice (first: "
                                            f"{_reason(first)}; then, after waiting up to {self.retry_wait:g} s for "
                                            f"it to answer {HEALTH_PATH}: {_reason(e)})") from e
                first = e
            self.stats[RETRY_STAT] += 1
            self._wait_until_healthy()
        raise AssertionError("unreachable")

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """See :meth:`Searcher.batch_search`: the server's searcher's hits for each query.

        Raises:
            RemoteSearchError: the server failed a chunk twice, refused it (e.g. k above its ``max_k``), or timed out.
        """
        k = int(k)
        if k <= 0 or len(queries) == 0:
            return [[] for _ in queries]
        unique = list(dict.fromkeys(queries))
        found: dict[str, list[Hit]] = {}
        for start in range(0, len(unique), self.max_batch):
            chunk = unique[start : start + self.max_batch]
            found.update(zip(chunk, self._post(chunk, k)))
        return [list(found[q]) for q in queries]

    # ---- catalog text -----------------------------------------------------------------------------

    def _docs_once(self, doc_ids: list[str]) -> list[str | None]:
        """One /docs request; raises httpx errors and _ServerFault for :meth:`_retry_once` to judge."""
        response = self._client.post(DOCS_PATH, content=docs_request_body(doc_ids),
                                     headers={"content-type": "application/json"})  # fmt: skip
        if response.status_code >= 500:
            raise _ServerFault(f"HTTP {response.status_code}: {response.text[:300]}")
        if response.status_code != 200:
            raise RemoteSearchError(f"retrieval server {self.url} refused the text of {len(doc_ids)} doc ids: HTTP "
                                    f"{response.status_code}: {response.text[:500]}")
        try:
            return decode_texts(response.json(), len(doc_ids))
        except ValueError as e:
            raise RemoteSearchError(f"retrieval server {self.url} answered {DOCS_PATH} for {len(doc_ids)} doc ids "
                                    f"with something that is not their texts: {e}") from e

    def doc_texts(self, doc_ids: Sequence[str]) -> list[str | None]:
        """See :meth:`Searcher.doc_texts`: the server's searcher's text of each id (None: it holds none), in chunks
        of the server's ``max_doc_ids``, each retried once like a search.

        Raises:
            RemoteSearchError: the server failed a chunk twice, refused it, or timed out.
        """
        ids = [str(d) for d in doc_ids]
        texts: list[str | None] = []
        for start in range(0, len(ids), self.max_doc_ids):
            chunk = ids[start : start + self.max_doc_ids]
            texts += self._retry_once(f"the text of {len(chunk)} doc ids", lambda chunk=chunk: self._docs_once(chunk))
        return texts

    def close(self) -> None:
        self._client.close()


class _ServerFault(Exception):
    """A 5xx answer (worth one retry)."""


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "none"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text
