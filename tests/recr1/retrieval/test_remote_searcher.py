"""RemoteSearcher against a real retrieval server (python -m recr1.retrieval.serve as a child process) over the tiny
Lucene index: the same hits as in process, the reward and the eval through it, preflight errors, restarts."""
import json
import socket
import threading
import time

import pytest

from recr1.data.records import make_row, write_rows
from recr1.eval import evaluate
from recr1.eval import main as eval_main
from recr1.retrieval.base import Searcher
from recr1.retrieval.query_cache import CachedSearcher
from recr1.retrieval.remote_searcher import RETRY_STAT, RemoteSearcher, RemoteSearchError
from recr1.retrieval.searcher import get_searcher
from recr1.retrieval.server_process import ServerProcess
from recr1.reward import compute_score_batch, preflight, resolve_searcher

KNOWN = ["red leather shoes", "steel knife", "brass compass", "socks", "usb c cable", "wireless headphones"]


@pytest.fixture(scope="module")
def server(lucene_index_dir, tmp_path_factory):
    """A retrieval server on the tiny index (default settings, as the in-process ``bm25_searcher``)."""
    with ServerProcess(lucene_index_dir, "bm25", log_path=str(tmp_path_factory.mktemp("serve") / "serve.log")) as s:
        yield s


def respond(query: str) -> str:
    return f"<think>t</think><answer>{json.dumps({'query': query})}</answer>"


def test_same_ids_and_scores_as_in_process_incl_adversarial_queries(server, bm25_searcher, adversarial_queries):
    remote = RemoteSearcher(server.url)
    chunked = RemoteSearcher(server.url, max_batch=4)  # 4 queries a request
    assert (remote.max_batch, chunked.max_batch) == (1024, 4)
    queries = KNOWN + adversarial_queries + KNOWN[::-1]
    for k in (1, 3, 1000):
        expected = bm25_searcher.batch_search(queries, k)
        assert remote.batch_search(queries, k) == expected, k
        assert chunked.batch_search(queries, k) == expected, k
    assert remote.search("red leather shoes", 2) == [hit for hit in expected[0][:2]]
    assert remote.batch_search([], 5) == [] and remote.batch_search(["socks"], 0) == [[]]
    assert remote.stats[RETRY_STAT] == 0
    # where the time went: the server's search and encoding (its Server-Timing header) within each round trip
    assert 0 < remote.timings["server_search"] + remote.timings["server_encode"] < remote.timings["request"]
    assert remote.timings["decode"] > 0


def test_doc_texts_are_the_in_process_searchers(server, bm25_searcher):
    remote = RemoteSearcher(server.url)
    ids = [doc_id for hits in bm25_searcher.batch_search(KNOWN, 3) for doc_id, _ in hits] + ["no-such-id"]
    expected = bm25_searcher.doc_texts(ids)
    assert expected[-1] is None and all(expected[:-1])
    assert remote.doc_texts(ids) == expected and remote.doc_texts([]) == []
    remote.max_doc_ids = 4  # several /docs requests, texts still in order
    assert remote.doc_texts(ids) == expected
    assert remote.stats[RETRY_STAT] == 0


def test_health_gives_kind_index_and_size(server, lucene_index_dir, bm25_searcher):
    remote = RemoteSearcher(server.url + "/")
    assert (remote.kind, remote.retriever, remote.index, remote.url) == ("remote", "bm25", lucene_index_dir, server.url)
    assert remote.num_docs == bm25_searcher.num_docs == 31 and remote.max_query_terms == bm25_searcher.max_query_terms


def test_reward_through_the_server_scores_exactly_as_in_process(server, lucene_index_dir, adversarial_queries):
    searcher = get_searcher("remote", url=server.url, cache_size=50)
    assert isinstance(searcher, CachedSearcher) and isinstance(searcher.inner, RemoteSearcher)
    assert resolve_searcher("remote", url=server.url, cache_size=50) is searcher
    responses = [respond(q) for q in KNOWN + adversarial_queries] + ["no answer tags"]
    n = len(responses)
    sources = ["amazon_c4_train", "amazon_c4_val"] * (n // 2) + ["amazon_c4_train"] * (n % 2)
    truths = [{"target": ["shoe-red", "knife-steel"]}] * n
    local = compute_score_batch(sources, responses, truths, retriever="bm25", index=lucene_index_dir)
    for _ in range(2):  # the second call is answered by the client's query cache
        remote = compute_score_batch(sources, responses, truths, retriever="remote", url=server.url, cache_size=50)
        assert [r["score"] for r in remote] == [r["score"] for r in local]
        assert [r["rank"] for r in remote] == [r["rank"] for r in local]
    assert remote[0]["rank"] == remote[1]["rank"] == 1 and remote[-1]["score"] == -2.0


def test_preflight_passes_and_names_the_url_of_a_server_that_cannot_answer(server, tmp_path, monkeypatch):
    preflight(retriever="remote", url=server.url, k_train=1000, format_bonus=0.1)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(RemoteSearchError, match=f"{refused}.*ConnectError"):
        preflight(retriever="remote", url=refused)
    with pytest.raises(RemoteSearchError, match=rf"{server.url}/no/such/prefix.*HTTP 404"):
        preflight(retriever="remote", url=server.url + "/no/such/prefix")
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(RemoteSearchError, match=f"{url}.*ReadTimeout"):
            preflight(retriever="remote", url=url, timeout=0.5)
    with pytest.raises(ValueError, match="timeo"):
        preflight(retriever="remote", url=server.url, timeo=3)
    for bad in ({"timeout": 0}, {"retry_wait": -1}, {"max_batch": 0}, {"url": "localhost:8000"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RemoteSearcher(**{"url": server.url, **bad})
    monkeypatch.delenv("RECR1_URL", raising=False)
    with pytest.raises(ValueError, match="RECR1_URL"):
        preflight(retriever="remote")
    with pytest.raises(ValueError, match="index=.*the server searches its own index"):
        resolve_searcher("remote", "/some/index", url=server.url)


def _empty_lucene_index(folder) -> str:
    from recr1.retrieval.java import java_class, start_jvm

    start_jvm()
    directory = java_class("org.apache.lucene.store.FSDirectory").open(java_class("java.io.File")(str(folder)).toPath())
    config = java_class("org.apache.lucene.index.IndexWriterConfig")()
    writer = java_class("org.apache.lucene.index.IndexWriter")(directory, config)
    writer.commit()
    writer.close()
    return str(folder)


def test_preflight_refuses_a_server_with_an_empty_index(tmp_path):
    empty = _empty_lucene_index(tmp_path / "empty_index")
    with ServerProcess(empty, "bm25", log_path=str(tmp_path / "serve.log")) as server:
        assert "holds no documents" in server.log_tail()
        with pytest.raises(ValueError, match=rf"retrieval server '{server.url}'.* holds no documents"):
            preflight(retriever="remote", url=server.url)


def test_a_restarted_server_is_retried_once_and_a_dead_one_named(lucene_index_dir, bm25_searcher, tmp_path):
    first = ServerProcess(lucene_index_dir, "bm25", log_path=str(tmp_path / "first.log")).start()
    port = first.url.rsplit(":", 1)[1]
    second = ServerProcess(lucene_index_dir, "bm25", port=int(port), log_path=str(tmp_path / "second.log"))
    try:
        remote = RemoteSearcher(first.url, retry_wait=60)
        assert remote.batch_search(KNOWN, 5) == bm25_searcher.batch_search(KNOWN, 5)
        first.stop()  # mid-run: the next request finds no server until the new one is up
        restart = threading.Thread(target=second.start)
        restart.start()
        assert remote.batch_search(KNOWN[::-1], 5) == bm25_searcher.batch_search(KNOWN[::-1], 5)
        restart.join()
        assert remote.stats[RETRY_STAT] == 1 and second.url == first.url
        second.stop()  # for good
        remote.retry_wait = 0.5
        with pytest.raises(RemoteSearchError, match=rf"{first.url} failed a batch of 2 queries \(k=5\) twice"):
            remote.batch_search(["socks", "steel knife"], 5)
        assert remote.stats[RETRY_STAT] == 2
    finally:
        first.stop()
        second.stop()


@pytest.fixture
def eval_parquet(tmp_path) -> str:
    rows = [make_row(data_source="amazon_c4_Baby_test", request=request, target=target, split="test", index=i,
                     qid=f"q{i}", category="Baby")
            for i, (request, target) in enumerate([("red leather running shoes", ["shoe-red"]),
                                                   ("vintage brass compass", ["tie-m"]),
                                                   ("cotton socks pack", ["sock-01"])])]  # fmt: skip
    path = str(tmp_path / "test.parquet")
    write_rows(rows, path)
    return path


def test_eval_through_the_server_equals_in_process(server, eval_parquet, lucene_index_dir, tmp_path):
    local = evaluate(eval_parquet, lucene_index_dir, "bm25", str(tmp_path / "local"))
    eval_main(["--data", eval_parquet, "--retriever", "remote", "--url", server.url, "--out", str(tmp_path / "remote")])
    remote_json = json.loads((tmp_path / "remote" / "metrics.json").read_text())
    assert remote_json["table"] == local and remote_json["retriever"] == "remote"
    assert server.url in remote_json["index"] and lucene_index_dir in remote_json["index"]
    read = lambda name: [json.loads(line)["top10"] for line in open(tmp_path / name / "requests.jsonl")]  # noqa: E731
    assert read("remote") == read("local") and read("local")[0][0] == "shoe-red"
    with pytest.raises(SystemExit):
        eval_main(["--data", eval_parquet, "--retriever", "remote", "--url", server.url, "--index", lucene_index_dir,
                   "--out", str(tmp_path / "x")])  # fmt: skip
    with pytest.raises(SystemExit):
        eval_main(["--data", eval_parquet, "--retriever", "bm25", "--out", str(tmp_path / "x")])


def test_remote_takes_no_searcher_processes(server):
    with pytest.raises(ValueError, match="num_workers=2 with retriever remote"):
        get_searcher("remote", url=server.url, num_workers=2)


def test_verl_trainer_checks_the_server_before_any_worker(server, tmp_path):
    """The Rec-R1 preset with reward_kwargs retriever=remote + url through verl's pre-worker check (plain hydra
    overrides: url is not in the preset)."""
    import pandas as pd

    from verl.trainer.config_check import ConfigError
    from verl.trainer.main_ppo import load_config
    from verl.trainer.ppo.reward_preflight import check_reward_before_workers

    rows = [{"data_source": source, "prompt": [{"role": "user", "content": "red shoes"}],
             "reward_model": {"style": "rule", "ground_truth": {"target": ["shoe-red"]}}}
            for source in ("amazon_c4_train", "amazon_c4_val")]  # fmt: skip
    for name, row in zip(("train", "val"), rows):
        pd.DataFrame([row]).to_parquet(tmp_path / f"{name}.parquet")
    overrides = [f"data.train_files={tmp_path / 'train.parquet'}", f"data.val_files={tmp_path / 'val.parquet'}",
                 "custom_reward_function.reward_kwargs.retriever=remote"]  # fmt: skip
    check_reward_before_workers(load_config(overrides + [f"custom_reward_function.reward_kwargs.url={server.url}"],
                                            config_name="recr1_grpo"))  # fmt: skip
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(ConfigError, match=f"retrieval server '{refused}'.*ConnectError"):
        check_reward_before_workers(load_config(overrides + [f"custom_reward_function.reward_kwargs.url={refused}"],
                                                config_name="recr1_grpo"))  # fmt: skip


class FailingSearcher(Searcher):
    """The real searcher behind a fault the server cannot recover from by itself for ``failures`` calls."""

    kind = "bm25"

    def __init__(self, inner, failures):
        super().__init__()
        self.inner, self.failures = inner, failures

    def batch_search(self, queries, k):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the index went away")
        return self.inner.batch_search(queries, k)

    def doc_texts(self, doc_ids):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the index went away")
        return self.inner.doc_texts(doc_ids)

    @property
    def num_docs(self):
        return self.inner.num_docs


@pytest.fixture
def flaky_server(bm25_searcher, lucene_index_dir):
    """(url, searcher) of a real uvicorn server, in a thread of this process, whose searcher fails on demand."""
    import uvicorn

    from recr1.retrieval.serve import SearchService, create_app

    searcher = FailingSearcher(bm25_searcher, failures=0)
    app = create_app(SearchService(lambda: searcher), "bm25", lucene_index_dir)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", searcher
    server.should_exit = True
    thread.join(10)


def test_a_server_error_is_retried_once_then_named(flaky_server, bm25_searcher):
    url, searcher = flaky_server
    remote = RemoteSearcher(url, retry_wait=1)
    searcher.failures = 1
    assert remote.batch_search(KNOWN, 5) == bm25_searcher.batch_search(KNOWN, 5)
    assert remote.stats[RETRY_STAT] == 1
    searcher.failures = 2
    with pytest.raises(RemoteSearchError, match=r"a batch of 6 queries \(k=5\) twice.*HTTP 500.*index went away"):
        remote.batch_search(KNOWN, 5)


def test_a_server_error_in_doc_texts_is_retried_once_then_named(flaky_server, bm25_searcher):
    url, searcher = flaky_server
    remote = RemoteSearcher(url, retry_wait=1)
    searcher.failures = 1
    assert remote.doc_texts(["shoe-red", "no-such-id"]) == bm25_searcher.doc_texts(["shoe-red", "no-such-id"])
    assert remote.stats[RETRY_STAT] == 1
    searcher.failures = 2
    with pytest.raises(RemoteSearchError, match=r"the text of 2 doc ids twice.*HTTP 500.*index went away"):
        remote.doc_texts(["shoe-red", "socks"])
