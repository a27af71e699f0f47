"""The retrieval server's HTTP endpoints, in process (FastAPI's test client) over the real tiny Lucene index."""
import base64
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recr1.retrieval.base import Searcher
from recr1.retrieval.search_protocol import (
    MAX_DOC_IDS,
    decode_hits,
    encode_hits,
    parse_server_timing,
    request_body,
    server_timing,
)
from recr1.retrieval.serve import SearchService, create_app, main

KNOWN = ["red leather shoes", "steel knife", "brass compass", "socks", "usb c cable", "red leather shoes"]


class ThreadRecordingSearcher(Searcher):
    """The real searcher, noting which threads call it."""

    kind = "bm25"

    def __init__(self, inner):
        super().__init__()
        self.inner, self.threads = inner, set()

    def batch_search(self, queries, k):
        self.threads.add(threading.get_ident())
        return self.inner.batch_search(queries, k)

    def doc_texts(self, doc_ids):
        self.threads.add(threading.get_ident())
        return self.inner.doc_texts(doc_ids)

    @property
    def num_docs(self):
        self.threads.add(threading.get_ident())
        return self.inner.num_docs


@pytest.fixture(scope="module")
def served(bm25_searcher, lucene_index_dir):
    """(test client, the searcher behind it) for a server with max_batch 8 and max_k 50."""
    searcher = ThreadRecordingSearcher(bm25_searcher)
    service = SearchService(lambda: searcher)
    with TestClient(create_app(service, "bm25", lucene_index_dir, max_batch=8, max_k=50)) as client:
        yield client, searcher


def test_health_names_the_index_and_its_size(served, lucene_index_dir, bm25_searcher):
    client, _ = served
    answer = client.get("/health")
    assert answer.status_code == 200
    info = answer.json()
    assert info["status"] == "ok" and info["retriever"] == "bm25" and info["index"] == lucene_index_dir
    assert info["num_docs"] == bm25_searcher.num_docs == 31 and (info["max_batch"], info["max_k"]) == (8, 50)


@pytest.mark.parametrize("binary", [False, True])
def test_search_answers_exactly_what_the_searcher_returns(served, bm25_searcher, adversarial_queries, binary):
    client, _ = served
    for chunk in (KNOWN, *(adversarial_queries[i : i + 8] for i in range(0, len(adversarial_queries), 8))):
        for k in (1, 50):
            # request_body escapes non-ASCII: the lone surrogates of the adversarial queries cannot be UTF-8
            answer = client.post("/search", content=request_body(chunk, k, binary),
                                 headers={"content-type": "application/json"})
            assert answer.status_code == 200, answer.text
            assert decode_hits(answer.json(), len(chunk)) == bm25_searcher.batch_search(chunk, k)
    plain = client.post("/search", json={"queries": ["red leather shoes"], "k": 2})
    assert [doc_id for doc_id, _ in plain.json()["hits"][0]] == ["shoe-red", "shoe-blue"]
    assert set(parse_server_timing(plain.headers["server-timing"])) == {"search", "encode"}


def test_server_timing_header_round_trip():
    assert parse_server_timing(server_timing(search=0.25, encode=0.0015)) == {"search": 0.25, "encode": 0.0015}
    assert parse_server_timing('db;dur=53, cache;desc="Cache Read";dur=23.2, miss, x;dur=bad') == \
        {"db": 0.053, "cache": 0.0232}
    assert parse_server_timing(None) == {}


def test_binary_scores_are_the_exact_float64_values():
    hits = [[("a", 14.234567642211914), ("b", 1 / 3)], [], [("c", -0.0)]]
    answer = json.loads(encode_hits(hits, binary_scores=True))
    assert answer["ids"] == [["a", "b"], [], ["c"]]
    assert np.frombuffer(base64.b64decode(answer["scores"][0]), "<f8").tolist() == [14.234567642211914, 1 / 3]
    assert decode_hits(answer, 3) == hits
    with pytest.raises(ValueError, match="expected 2 id and score lists"):
        decode_hits(answer, 2)


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not JSON"),
        (b'["red shoes"]', 422, "JSON object"),
        (b'{"k": 5}', 422, "missing field 'queries'"),
        (b'{"queries": ["a"]}', 422, "missing field 'k'"),
        (b'{"queries": "red shoes", "k": 5}', 422, "'queries' must be a list of strings, got str"),
        (b'{"queries": ["red", 7, "shoes"], "k": 5}', 422, r"'queries\[1\]' must be a string, got int"),
        (b'{"queries": ["red", null], "k": 5}', 422, r"'queries\[1\]' must be a string, got NoneType"),
        (b'{"queries": ["q"], "k": 0}', 422, "'k' must be a positive whole number, got 0"),
        (b'{"queries": ["q"], "k": -3}', 422, "'k' must be a positive whole number"),
        (b'{"queries": ["q"], "k": "10"}', 422, "'k' must be a positive whole number, got '10'"),
        (b'{"queries": ["q"], "k": 2.5}', 422, "'k' must be a positive whole number"),
        (b'{"queries": ["q"], "k": true}', 422, "'k' must be a positive whole number, got True"),
        (b'{"queries": ["q"], "k": 51}', 422, r"'k'=51 .*--max-k, 50"),
        (b'{"queries": ["q","q","q","q","q","q","q","q","q"], "k": 5}', 422, r"9 queries; .* at most 8"),
        (b'{"queries": ["q"], "k": 5, "kk": 1}', 422, r"unknown field\(s\) \['kk'\]"),
        (b'{"queries": ["q"], "k": 5, "binary_scores": "yes"}', 422, "'binary_scores' must be true or false"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(served, body, status, message):
    client, _ = served
    answer = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert re.search(message, answer.json()["detail"]), answer.json()["detail"]


def test_concurrent_requests_all_run_on_the_one_search_thread(served, bm25_searcher):
    client, searcher = served
    queries = [[q, "steel knife"] for q in KNOWN * 4]

    def ask(batch):
        return decode_hits(client.post("/search", json={"queries": batch, "k": 10}).json(), len(batch))

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, queries))
    assert answers == [bm25_searcher.batch_search(batch, 10) for batch in queries]
    assert len(searcher.threads) == 1 and threading.get_ident() not in searcher.threads


def test_cli_refuses_bad_settings_and_a_missing_index(tmp_path, lucene_index_dir):
    with pytest.raises(SystemExit, match="no_index_here"):
        main(["--index", str(tmp_path / "no_index_here"), "--retriever", "bm25", "--port", "0"])
    with pytest.raises(SystemExit, match="--ef-search is a setting of the other retriever"):
        main(["--index", lucene_index_dir, "--retriever", "bm25", "--port", "0", "--ef-search", "64"])
    with pytest.raises(SystemExit, match="--max-batch=0"):
        main(["--index", lucene_index_dir, "--retriever", "bm25", "--port", "0", "--max-batch", "0"])


def test_dense_index_served_gives_the_dense_searchers_hits(dense_index_dir, adversarial_queries):
    from recr1.retrieval.searcher import get_searcher

    dense = get_searcher("dense", dense_index_dir, cache_size=0)
    with TestClient(create_app(SearchService(lambda: dense), "dense", dense_index_dir)) as client:
        assert client.get("/health").json()["retriever"] == "dense"
        queries = KNOWN + adversarial_queries[:12]
        answer = client.post("/search", content=request_body(queries, 5), headers={"content-type": "application/json"})
        hits = decode_hits(answer.json(), len(queries))
    # the same batch through the same encoder: the very same floats
    assert hits == dense.batch_search(queries, 5) and hits[0][0][0] == "shoe-red"


def test_docs_answers_the_searchers_texts_on_the_search_thread(served, bm25_searcher):
    client, searcher = served
    ids = [doc_id for doc_id, _ in bm25_searcher.search("red leather shoes", 5)] + ["no-such-id", "shoe-red"]
    answer = client.post("/docs", json={"ids": ids})
    assert answer.status_code == 200, answer.text
    texts = answer.json()["texts"]
    assert texts == bm25_searcher.doc_texts(ids) and texts[-2] is None and texts[0] and texts[-1] == texts[0]
    assert client.post("/docs", json={"ids": []}).json() == {"texts": []}
    assert len(searcher.threads) == 1 and threading.get_ident() not in searcher.threads
    assert client.get("/health").json()["max_doc_ids"] == MAX_DOC_IDS


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not JSON"),
        (b'["shoe-red"]', 422, "JSON object with 'ids'"),
        (b"{}", 422, "missing field 'ids'"),
        (b'{"ids": "shoe-red"}', 422, "'ids' must be a list of strings, got str"),
        (b'{"ids": ["shoe-red", 7]}', 422, r"'ids\[1\]' must be a string, got int"),
        (b'{"ids": ["shoe-red"], "k": 3}', 422, r"unknown field\(s\) \['k'\]"),
        (json.dumps({"ids": ["x"] * (MAX_DOC_IDS + 1)}).encode(), 422,
         rf"{MAX_DOC_IDS + 1} ids; .* at most {MAX_DOC_IDS}"),
    ],
)
def test_bad_docs_requests_are_refused_naming_the_field(served, body, status, message):
    client, _ = served
    answer = client.post("/docs", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert re.search(message, answer.json()["detail"]), answer.json()["detail"]
