"""What the retrieval server and its client say to each other: the /search and /docs requests, their checks, the
answers.

    POST /search  {"queries": ["red shoes", "usb c cable"], "k": 100}
               -> {"hits": [[["shoe-red", 14.2], ["shoe-blue", 9.7], ...], [...]]}
    POST /search  {"queries": [...], "k": 100, "binary_scores": true}
               -> {"ids": [["shoe-red", "shoe-blue", ...], [...]], "scores": ["<base64>", "<base64>"]}

    POST /docs    {"ids": ["shoe-red", "nope"]}  ->  {"texts": ["Red leather shoes ...", null]}

One ranked list per query, best first, in the order of ``queries``. ``binary_scores`` sends each query's scores
as base64 of little-endian float64 (exact, like the JSON numbers): writing and reading a JSON float costs about
1 us, 0.3-0.7 s per GRPO step of 250 queries x 1000 hits, which would double the reward's time on 2 cores;
base64 costs ~20 ms. :class:`~recr1.retrieval.remote_searcher.RemoteSearcher` asks for it; the plain form is
for people (curl) and other clients.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recr1.retrieval.base import Hit

SEARCH_PATH = "/search"
HEALTH_PATH = "/health"
REQUEST_FIELDS = ("queries", "k", "binary_scores")
DOCS_PATH = "/docs"
DOCS_FIELDS = ("ids",)
MAX_DOC_IDS = 1000  # /docs is for showing a few results to a person; one stored-document read per id
DEFAULT_MAX_BATCH = 1024
DEFAULT_MAX_K = 100_000
_SCORE_DTYPE = np.dtype("<f8")


class BadSearchRequest(ValueError):
    """A /search request the server refuses; ``status`` is the HTTP status (400: not JSON, 422: a bad field)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SearchRequest:
    """A checked /search request."""

    queries: list[str]
    k: int
    binary_scores: bool = False


def _json_object(body: bytes, fields: Sequence[str], required: Sequence[str], holding: str) -> dict:
    """The body as a JSON object whose keys are among ``fields`` and include ``required``.

    Raises:
        BadSearchRequest: not JSON (400), not an object, an unknown field or a missing one (422).
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BadSearchRequest(f"request body is not JSON: {e}", status=400) from e
    if not isinstance(data, dict):
        raise BadSearchRequest(f"request body must be a JSON object with {holding}, got {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadSearchRequest(f"unknown field(s) {unknown}; expected {list(fields)}")
    for field in required:
        if field not in data:
            raise BadSearchRequest(f"missing field '{field}'")
    return data


def _string_list(data: dict, field: str) -> list[str]:
    """``data[field]``, which must be a list of strings (BadSearchRequest naming the field or the entry)."""
    values = data[field]
    if not isinstance(values, list):
        raise BadSearchRequest(f"'{field}' must be a list of strings, got {type(values).__name__}")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadSearchRequest(f"'{field}[{i}]' must be a string, got {type(value).__name__}: {value!r:.100}")
    return values


def request_body(queries: Sequence[str], k: int, binary_scores: bool = True) -> bytes:
    """The JSON body of a /search request. Non-ASCII text is escaped, so any Python string travels, even one with
    a lone surrogate (an LLM's broken output), which UTF-8 cannot carry."""
    return json.dumps({"queries": list(queries), "k": k, "binary_scores": binary_scores}).encode("ascii")


def parse_search_request(body: bytes, max_batch: int = DEFAULT_MAX_BATCH, max_k: int = DEFAULT_MAX_K) -> SearchRequest:
    """Check a /search body.

    Raises:
        BadSearchRequest: the body is not JSON (400), or a field is missing, unknown or bad (422); the message
            names the field (and for a query, its position and type).
    """
    data = _json_object(body, REQUEST_FIELDS, ("queries", "k"), "'queries' and 'k'")
    queries, k, binary = _string_list(data, "queries"), data["k"], data.get("binary_scores", False)
    if len(queries) > max_batch:
        raise BadSearchRequest(f"'queries' holds {len(queries)} queries; this server takes at most {max_batch} per "
                               f"request (its --max-batch): send them in chunks")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BadSearchRequest(f"'k' must be a positive whole number, got {k!r:.100}")
    if k > max_k:
        raise BadSearchRequest(f"'k'={k} is more hits than this server returns per query (its --max-k, {max_k})")
    if not isinstance(binary, bool):
        raise BadSearchRequest(f"'binary_scores' must be true or false, got {binary!r:.100}")
    return SearchRequest(queries, k, binary)


def docs_request_body(doc_ids: Sequence[str]) -> bytes:
    """The JSON body of a /docs request (ASCII-escaped, like :func:`request_body`)."""
    return json.dumps({"ids": [str(d) for d in doc_ids]}).encode("ascii")


def parse_docs_request(body: bytes, max_ids: int = MAX_DOC_IDS) -> list[str]:
    """Check a /docs body; returns its ids.

    Raises:
        BadSearchRequest: the body is not JSON (400), or ``ids`` is missing, not a list of strings, or longer than
            ``max_ids``, or another field is present (422); the message names the field.
    """
    ids = _string_list(_json_object(body, DOCS_FIELDS, ("ids",), "'ids'"), "ids")
    if len(ids) > max_ids:
        raise BadSearchRequest(f"'ids' holds {len(ids)} ids; this server reads at most {max_ids} per request")
    return ids


def encode_texts(texts: Sequence[str | None]) -> bytes:
    """The JSON answer to a /docs request; ASCII-escaped, so a stored text with any code point travels."""
    return json.dumps({"texts": list(texts)}, separators=(",", ":")).encode("ascii")


def decode_texts(answer, n_ids: int) -> list[str | None]:
    """The texts in a /docs answer, one per id asked (None for an id the server holds no text for).

    Raises:
        ValueError: the answer is not ``n_ids`` strings or nulls.
    """
    texts = answer.get("texts") if isinstance(answer, dict) else None
    if not isinstance(texts, list) or len(texts) != n_ids:
        raise ValueError(f"expected 'texts' with {n_ids} entries, got {_describe(texts)}")
    for i, text in enumerate(texts):
        if text is not None and not isinstance(text, str):
            raise ValueError(f"texts[{i}] is {type(text).__name__}, not a string or null")
    return texts


def encode_hits(hits: Sequence[Sequence[Hit]], binary_scores: bool) -> bytes:
    """The JSON answer to a /search request (see the module docstring); hits: one list per query."""
    if not binary_scores:
        return json.dumps({"hits": hits}, separators=(",", ":")).encode("ascii")
    ids = [[doc_id for doc_id, _ in row] for row in hits]
    scores = [base64.b64encode(np.fromiter((s for _, s in row), _SCORE_DTYPE, len(row)).tobytes()).decode("ascii")
              for row in hits]  # fmt: skip
    return json.dumps({"ids": ids, "scores": scores}, separators=(",", ":")).encode("ascii")


def decode_hits(answer: dict, n_queries: int) -> list[list[Hit]]:
    """The hits in a /search answer (either form) as ``(doc_id, score)`` lists, one per query.

    Raises:
        ValueError: the answer does not hold ``n_queries`` well-formed lists.
    """
    if "hits" in answer:
        rows = answer["hits"]
        if not isinstance(rows, list) or len(rows) != n_queries:
            raise ValueError(f"expected {n_queries} hit lists, got {_describe(rows)}")
        return [[(str(doc_id), float(score)) for doc_id, score in row] for row in rows]
    ids, scores = answer.get("ids"), answer.get("scores")
    if not isinstance(ids, list) or not isinstance(scores, list) or not len(ids) == len(scores) == n_queries:
        raise ValueError(f"expected {n_queries} id and score lists, got {_describe(ids)} and {_describe(scores)}")
    out = []
    for i, (row_ids, row_scores) in enumerate(zip(ids, scores)):
        values = np.frombuffer(base64.b64decode(row_scores), _SCORE_DTYPE).tolist()
        if len(values) != len(row_ids):
            raise ValueError(f"query {i}: {len(row_ids)} ids but {len(values)} scores")
        out.append(list(zip(row_ids, values)))
    return out


def server_timing(**seconds: float) -> str:
    """A ``Server-Timing`` header value (W3C: ``name;dur=milliseconds``) for the given phases in seconds."""
    return ", ".join(f"{name};dur={1000 * value:.1f}" for name, value in seconds.items())


def parse_server_timing(header: str | None) -> dict[str, float]:
    """Seconds per phase from a ``Server-Timing`` header value; entries without a duration are left out."""
    phases = {}
    for entry in (header or "").split(","):
        name, _, params = entry.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    phases[name] = float(value) / 1000
                except ValueError:
                    pass
    return phases


def _describe(value) -> str:
    return f"{len(value)} lists" if isinstance(value, list) else f"{type(value).__name__}"
