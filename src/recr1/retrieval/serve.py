"""Serve one BM25 or dense index over HTTP, so that training, evaluation and other jobs share it.

    python -m recr1.retrieval.serve --index data/index/lucene --retriever bm25 --port 8000 [--host 0.0.0.0]

    POST /search  {"queries": ["red shoes", ...], "k": 100}  ->  {"hits": [[["shoe-red", 14.2], ...], ...]}
    POST /docs    {"ids": ["shoe-red", ...]}  ->  {"texts": ["Red leather shoes ...", ...]}  (null: unknown id)
    GET  /health  ->  {"status": "ok", "retriever": "bm25", "index": "/abs/index", "num_docs": 1000000, ...}

(the request and answer forms are in :mod:`recr1.retrieval.search_protocol`). The reward and ``recr1.eval`` use
it with ``retriever: remote`` and ``url: http://host:8000`` (:class:`~recr1.retrieval.remote_searcher.RemoteSearcher`);
hits and scores are exactly those of the in-process searcher with the same settings.

One process, one searcher, and every call into it runs on one thread (the searcher's own), whatever thread
FastAPI picks for a request: pyjnius is not thread-safe (see :mod:`recr1.retrieval.lucene_searcher`). Requests
from several clients queue there; /health answers while a search runs. ``--port 0`` takes a free port; the
"ready" line printed once the index is loaded names the URL.
"""
# No ``from __future__ import annotations``: FastAPI reads the route's ``request: Request`` annotation at runtime.
import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from recr1.retrieval.base import Searcher
from recr1.retrieval.query_cache import DEFAULT_CACHE_SIZE
from recr1.retrieval.search_protocol import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_K,
    DOCS_PATH,
    HEALTH_PATH,
    MAX_DOC_IDS,
    SEARCH_PATH,
    BadSearchRequest,
    encode_hits,
    encode_texts,
    parse_docs_request,
    parse_search_request,
    server_timing,
)

log = logging.getLogger(__name__)
READY_PREFIX = "[serve] ready at "

# CLI flag -> searcher setting, for each kind (see LuceneSearcher / DenseSearcher).
BM25_FLAGS = {"k1": float, "b": float, "query_syntax": str, "max_query_terms": int, "dedup_terms": bool,
              "rec_r1_compat": bool, "jvm_heap": str}  # fmt: skip
DENSE_FLAGS = {"encoder": str, "pooling": str, "device": str, "threads": int, "ef_search": int, "batch_size": int,
               "max_query_terms": int}  # fmt: skip


class SearchService:
    """A searcher that only ever runs on one thread of its own (loading included).

    Args:
        load: builds the searcher; called once, on that thread.
    """

    def __init__(self, load: Callable[[], Searcher]):
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recr1-search")
        self.searcher = self._thread.submit(load).result()
        self.num_docs = self._thread.submit(lambda: self.searcher.num_docs).result()

    def _search_encoded(self, queries: list[str], k: int, binary_scores: bool) -> tuple[bytes, str]:
        t0 = time.perf_counter()
        hits = self.searcher.batch_search(queries, k)
        t1 = time.perf_counter()
        body = encode_hits(hits, binary_scores)
        return body, server_timing(search=t1 - t0, encode=time.perf_counter() - t1)

    async def search(self, queries: list[str], k: int, binary_scores: bool) -> tuple[bytes, str]:
        """The JSON answer for ``queries`` (see :func:`~recr1.retrieval.search_protocol.encode_hits`) and a
        ``Server-Timing`` header value with the seconds spent searching and encoding."""
        future = self._thread.submit(self._search_encoded, queries, k, binary_scores)
        return await asyncio.wrap_future(future)

    async def doc_texts(self, doc_ids: list[str]) -> list[str | None]:
        """The searcher's catalog text of each id (None: unknown), read on the search thread."""
        return await asyncio.wrap_future(self._thread.submit(self.searcher.doc_texts, doc_ids))

    def close(self) -> None:
        self._thread.submit(self.searcher.close).result()
        self._thread.shutdown()


def create_app(service: SearchService, retriever: str, index: str, max_batch: int = DEFAULT_MAX_BATCH,
               max_k: int = DEFAULT_MAX_K, settings: dict | None = None):
    """The FastAPI app answering /search, /docs and /health for ``service`` (a searcher of kind ``retriever`` over
    ``index``, loaded with ``settings``)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="Rec-R1 retrieval server", docs_url=None, redoc_url=None)
    health = {"status": "ok", "retriever": retriever, "index": index, "num_docs": service.num_docs,
              "max_batch": max_batch, "max_k": max_k, "max_doc_ids": MAX_DOC_IDS, "settings": settings or {},
              "max_query_terms": getattr(service.searcher, "max_query_terms", None)}  # fmt: skip

    @app.get(HEALTH_PATH)
    async def _health():
        return health

    @app.post(SEARCH_PATH)
    async def _search(request: Request):
        try:
            parsed = parse_search_request(await request.body(), max_batch, max_k)
        except BadSearchRequest as e:
            return JSONResponse({"detail": str(e)}, status_code=e.status)
        try:
            body, timing = await service.search(parsed.queries, parsed.k, parsed.binary_scores)
        except Exception as e:  # the searcher itself never raises on a query: this is a server fault
            log.exception("search of %d queries (k=%d) failed", len(parsed.queries), parsed.k)
            return JSONResponse({"detail": f"search failed: {type(e).__name__}: {e}"}, status_code=500)
        return Response(body, media_type="application/json", headers={"Server-Timing": timing})

    @app.post(DOCS_PATH)
    async def _docs(request: Request):
        try:
            doc_ids = parse_docs_request(await request.body())
        except BadSearchRequest as e:
            return JSONResponse({"detail": str(e)}, status_code=e.status)
        try:
            texts = await service.doc_texts(doc_ids)
        except Exception as e:
            log.exception("reading the text of %d doc ids failed", len(doc_ids))
            return JSONResponse({"detail": f"doc_texts failed: {type(e).__name__}: {e}"}, status_code=500)
        return Response(encode_texts(texts), media_type="application/json")

    return app


def _settings(args: argparse.Namespace) -> dict:
    """The searcher settings given on the command line; a flag of the other kind is an error."""
    own, other = (BM25_FLAGS, DENSE_FLAGS) if args.retriever == "bm25" else (DENSE_FLAGS, BM25_FLAGS)
    for name in other.keys() - own.keys():
        if getattr(args, name) not in (None, False):
            raise ValueError(f"--{name.replace('_', '-')} is a setting of the other retriever, not "
                             f"--retriever {args.retriever}")
    return {name: getattr(args, name) for name in own if getattr(args, name) not in (None, False)}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e}") from e
    return sock


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="the index folder (build_lucene / build_dense)")
    parser.add_argument("--retriever", required=True, choices=("bm25", "dense"))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines (no authentication: "
                        "only inside a trusted network)")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (see the ready line)")
    parser.add_argument("--cache-size", type=int, default=DEFAULT_CACHE_SIZE,
                        help="(query, k) -> hits kept across requests, shared by every client; 0: off")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most queries per request")
    parser.add_argument("--max-k", type=int, default=DEFAULT_MAX_K, help="most hits per query")
    bm25 = parser.add_argument_group("bm25 settings")
    bm25.add_argument("--k1", type=float)
    bm25.add_argument("--b", type=float)
    bm25.add_argument("--query-syntax", choices=("bow", "lucene"))
    bm25.add_argument("--dedup-terms", action="store_true", help="count each query term once")
    bm25.add_argument("--rec-r1-compat", action="store_true", help="wrap queries as Rec-R1 did (loses a word)")
    bm25.add_argument("--jvm-heap", help="JVM max heap, e.g. 4g")
    both = parser.add_argument_group("bm25 and dense settings")
    both.add_argument("--max-query-terms", type=int)
    dense = parser.add_argument_group("dense settings")
    dense.add_argument("--encoder")
    dense.add_argument("--pooling")
    dense.add_argument("--device")
    dense.add_argument("--threads", type=int, help="FAISS threads")
    dense.add_argument("--ef-search", type=int)
    dense.add_argument("--batch-size", type=int, help="queries per encoder pass")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = None
    try:
        for flag in ("max_batch", "max_k"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')}={getattr(args, flag)}; expected a positive number")
        settings = _settings(args)
        index = os.path.abspath(args.index)
        sock = _bind(args.host, args.port)
        print(f"[serve] loading the {args.retriever} index {index} {settings or ''}", flush=True)

        def load() -> Searcher:
            from recr1.retrieval.searcher import load_searcher
            from recr1.retrieval.query_cache import CachedSearcher

            searcher = load_searcher(args.retriever, index, **settings)
            return CachedSearcher(searcher, args.cache_size) if args.cache_size else searcher

        service = SearchService(load)
    except (FileNotFoundError, ValueError, OSError) as e:
        if sock is not None:
            sock.close()
        sys.exit(f"serve: {e}")
    if service.num_docs <= 0:
        print(f"[serve] WARNING: {index} holds no documents: every query will miss", flush=True)
    import uvicorn

    app = create_app(service, args.retriever, index, args.max_batch, args.max_k, settings)
    sock.listen(2048)  # from here on connections wait for uvicorn instead of being refused
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    everywhere = f"; other machines: http://{socket.gethostname()}:{port}" if host in ("0.0.0.0", "::") else ""
    print(f"{READY_PREFIX}{url} ({args.retriever} index {index}, {service.num_docs} docs; "
          f"POST {SEARCH_PATH}, POST {DOCS_PATH}, GET {HEALTH_PATH}{everywhere})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30))
    try:
        server.run(sockets=[sock])
    finally:
        service.close()


if __name__ == "__main__":
    main()
