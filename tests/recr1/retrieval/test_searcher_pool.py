"""Searcher processes over one real Lucene index: exactly one process's hits, restarts, clear failures, no orphans.

Starting a worker starts a JVM (seconds), so the tests share pools where they can and use one worker where the
test is about processes rather than splitting.
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from recr1.retrieval.pool_protocol import decode_hits, encode_hits
from recr1.retrieval.pool_subprocess import SubprocessWorker
from recr1.retrieval.query_cache import CachedSearcher
from recr1.retrieval.searcher import get_searcher
from recr1.retrieval.searcher_pool import SearcherPool, SearcherWorkerError, split_balanced
from recr1.reward import compute_score_batch, preflight

KNOWN = ["red leather shoes", "steel knife", "brass compass", "socks", "usb c cable", "wireless headphones",
         "comfortable cotton socks pack", "kitchen knife", "headphones black wireless", "vintage compass"]
LONG = [" ".join(["socks", "comfortable", "pairs", "cotton", "red", "running", "steel", "brass", "tea"][i % 9 :] * 14)
        for i in range(9)]  # 60-126 terms, as RL policies learn to write


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def wait_gone(pids, seconds=20.0) -> list[int]:
    """The pids still alive after waiting up to ``seconds`` for them to exit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def plain(lucene_index_dir):
    """The uncached in-process BM25 searcher: the reference."""
    return get_searcher("bm25", lucene_index_dir, cache_size=0)


@pytest.fixture(scope="module")
def cached_pool(lucene_index_dir):
    """get_searcher's pool of 2 subprocess workers behind the query cache (the reward's searcher with
    reward_kwargs.num_workers=2)."""
    return get_searcher("bm25", lucene_index_dir, num_workers=2)


@pytest.fixture
def fresh_pool(lucene_index_dir):
    """A pool of its own, for tests that kill its workers."""
    pool = SearcherPool("bm25", lucene_index_dir, num_workers=2, backend="subprocess")
    yield pool
    pool.close()


def test_split_balanced_cuts_contiguous_ranges_of_equal_cost():
    assert split_balanced([1] * 8, 2) == [(0, 4), (4, 8)]
    assert split_balanced([1] * 7, 3) == [(0, 2), (2, 5), (5, 7)]
    assert split_balanced([10, 1, 1, 1, 1], 2) == [(0, 1), (1, 5)]  # one long query against many short ones
    assert split_balanced([5], 3) == [(0, 0), (0, 1), (1, 1)]
    assert split_balanced([], 2) == [(0, 0), (0, 0)]


def test_hits_travel_exactly():
    hits = [[("a", 1.5), ("b", 0.1 + 0.2)], [], [("c", -3e-9)]]
    assert decode_hits(encode_hits(hits)) == hits
    with_newline = [[("x\ny", 1.0), ("z", 2.0)]]
    assert decode_hits(encode_hits(with_newline)) == with_newline


def test_same_hits_and_scores_as_one_process(cached_pool, plain, adversarial_queries):
    pool = cached_pool.inner
    assert isinstance(pool, SearcherPool) and pool.backend == "subprocess" and len(set(pool.worker_pids)) == 2
    queries = KNOWN + LONG + adversarial_queries + KNOWN[::-1] + ["red  leather\tshoes", "RED leather shoes"]
    for k in (1, 3, 1000):
        expected = plain.batch_search(queries, k)
        assert pool.batch_search(queries, k) == expected, k  # same ids, same float scores, same order
        assert cached_pool.batch_search(queries, k) == expected, k
    assert pool.batch_search(KNOWN[:1], 5) == plain.batch_search(KNOWN[:1], 5)  # fewer queries than workers
    assert pool.batch_search([], 5) == [] and pool.batch_search(KNOWN, 0) == [[] for _ in KNOWN]
    assert [pool.query_key(q) for q in queries] == [plain.query_key(q) for q in queries]
    assert pool.num_docs == 31 and pool.ids_in_doc_order and pool.stats["search_error"] == 0


def test_big_batches_both_ways_do_not_deadlock_the_pipes(lucene_index_dir, plain):
    """Chunks larger than a pipe's buffer (64 KB) sent while the worker writes an answer larger than one: the worker
    must keep reading, or both sides wait on each other forever."""
    queries = [f"socks comfortable cotton pairs pack {i} " + f"filler{i} " * 150 for i in range(2000)]
    pool = SearcherPool("bm25", lucene_index_dir, num_workers=1, backend="subprocess")
    try:
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(hits=pool.batch_search(queries, 1000)), daemon=True)
        thread.start()
        thread.join(timeout=120)
        hung = thread.is_alive()
        while thread.is_alive():  # end a hung call (a worker killed twice fails it) so that close can run
            for pid in pool.worker_pids:
                os.kill(pid, signal.SIGKILL)
            thread.join(timeout=1)
        assert not hung, "the pool hung on a big batch"
        assert outcome["hits"] == plain.batch_search(queries, 1000)
    finally:
        pool.close()


def test_searcher_settings_reach_every_worker(lucene_index_dir):
    plain = get_searcher("bm25", lucene_index_dir, cache_size=0, dedup_terms=True, k1=0.9, b=0.4)
    pool = get_searcher("bm25", lucene_index_dir, cache_size=0, num_workers=2, dedup_terms=True, k1=0.9, b=0.4)
    queries = ["socks socks socks comfortable", "red red shoes"] + KNOWN
    assert pool.batch_search(queries, 10) == plain.batch_search(queries, 10)
    assert pool.batch_search(queries, 10) != get_searcher("bm25", lucene_index_dir, cache_size=0).batch_search(
        queries, 10)


def test_reward_with_num_workers_scores_as_one_process(cached_pool, lucene_index_dir):
    answers = [f'<think>t</think><answer>{{"query": "{q}"}}</answer>' for q in KNOWN + LONG] + ["no answer"]
    truths = [{"target": ["shoe-red"]}, {"target": ["knife-steel"]}] * (len(answers) // 2) + [{"target": ["x"]}]
    truths = truths[: len(answers)]
    sources = ["amazon_c4_train"] * len(answers)
    one = compute_score_batch(sources, answers, truths, retriever="bm25", index=lucene_index_dir)
    pooled = compute_score_batch(sources, answers, truths, retriever="bm25", index=lucene_index_dir, num_workers=2)
    assert [r["score"] for r in pooled] == [r["score"] for r in one]
    assert [r["rank"] for r in pooled] == [r["rank"] for r in one] and any(r["rank"] for r in one)
    preflight(retriever="bm25", index=lucene_index_dir, num_workers=2)


def test_get_searcher_checks_num_workers(cached_pool, lucene_index_dir):
    assert isinstance(cached_pool, CachedSearcher)
    assert get_searcher("bm25", lucene_index_dir, num_workers=2) is cached_pool
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="num_workers"):
            get_searcher("bm25", lucene_index_dir, num_workers=bad)
    with pytest.raises(ValueError, match="num_workers"):
        preflight(retriever="bm25", index=lucene_index_dir, num_workers=0)
    with pytest.raises(ValueError, match="cannot be pooled"):
        SearcherPool("remote", None, 2)
    with pytest.raises(FileNotFoundError, match="index folder not found"):
        SearcherPool("bm25", os.path.join(lucene_index_dir, "missing"), 2)


def test_a_bad_setting_fails_in_the_driver_with_the_workers_error(lucene_index_dir):
    with pytest.raises(TypeError, match="no_such_setting") as info:
        SearcherPool("bm25", lucene_index_dir, 2, backend="subprocess", no_such_setting=1)
    assert "searcher worker" in "".join(getattr(info.value, "__notes__", []))
    with pytest.raises(ValueError, match="neither a reward setting nor a bm25 searcher setting"):
        preflight(retriever="bm25", index=lucene_index_dir, num_workers=2, no_such_setting=1)


def kill_mid_call(monkeypatch, slot: int, times: int) -> list[int]:
    """Make the next ``times`` processes of worker ``slot`` die at their first batch: stopped before the batch is
    sent (so it cannot answer first), killed right after. Returns the pids killed."""
    killed = []
    send = SubprocessWorker.submit

    def submit(worker, queries, k):
        if worker.index != slot or len(killed) >= times or worker.pid in killed:
            return send(worker, queries, k)
        os.kill(worker.pid, signal.SIGSTOP)
        send(worker, queries, k)
        os.kill(worker.pid, signal.SIGKILL)
        killed.append(worker.pid)

    monkeypatch.setattr(SubprocessWorker, "submit", submit)
    return killed


def test_a_worker_killed_mid_call_is_restarted_and_its_batch_retried(fresh_pool, plain, adversarial_queries,
                                                                      monkeypatch):
    queries = KNOWN + LONG + adversarial_queries
    expected = plain.batch_search(queries, 50)
    before = fresh_pool.worker_pids
    killed = kill_mid_call(monkeypatch, slot=1, times=1)
    assert fresh_pool.batch_search(queries, 50) == expected
    assert killed == [before[1]] and not alive(before[1])
    after = fresh_pool.worker_pids
    assert after[0] == before[0] and after[1] != before[1] and alive(after[1])
    assert fresh_pool.stats["searcher_worker_restart"] == 1
    # A worker that died between calls is found at the next one.
    os.kill(after[0], signal.SIGKILL)
    wait_gone([after[0]])
    assert fresh_pool.batch_search(queries, 50) == expected
    assert fresh_pool.stats["searcher_worker_restart"] == 2
    pids = fresh_pool.worker_pids
    fresh_pool.close()
    assert wait_gone(pids) == []
    with pytest.raises(RuntimeError, match="closed"):
        fresh_pool.batch_search(KNOWN, 5)


def test_a_worker_that_dies_again_fails_the_call_naming_it(fresh_pool, monkeypatch):
    queries = KNOWN + LONG
    killed = kill_mid_call(monkeypatch, slot=1, times=2)
    with pytest.raises(SearcherWorkerError) as info:
        fresh_pool.batch_search(queries, 50)
    message = str(info.value)
    first_pid, second_pid = killed
    assert f"searcher worker 1 (pid {first_pid})" in message and f"restarted as pid {second_pid}" in message
    assert "killed by signal 9" in message
    assert f"of this call's {len(queries)} distinct queries (k=50)" in message
    assert "a batch of " in message and int(message.split("a batch of ")[1].split()[0]) > 0


def doc_ids_to_show(plain) -> list[str]:
    """Ids of a few real hits, one id twice and one unknown id."""
    ids = [doc_id for hits in plain.batch_search(KNOWN[:4], 2) for doc_id, _ in hits]
    return ids + [ids[0], "no-such-id"]


def test_doc_texts_are_one_processes(cached_pool, plain):
    ids = doc_ids_to_show(plain)
    expected = plain.doc_texts(ids)
    assert all(expected[:-1]) and expected[-1] is None
    assert cached_pool.doc_texts(ids) == expected and cached_pool.doc_texts([]) == []


def test_doc_texts_restart_a_dead_worker_once_then_name_it(fresh_pool, plain, monkeypatch):
    ids = doc_ids_to_show(plain)
    expected = plain.doc_texts(ids)
    first = fresh_pool.worker_pids[0]
    os.kill(first, signal.SIGKILL)
    wait_gone([first])
    assert fresh_pool.doc_texts(ids) == expected
    assert fresh_pool.stats["searcher_worker_restart"] == 1 and fresh_pool.worker_pids[0] != first

    killed = []
    send = SubprocessWorker.submit_docs

    def submit_docs(worker, doc_ids):  # every worker 0 dies right after it is asked
        os.kill(worker.pid, signal.SIGSTOP)
        send(worker, doc_ids)
        os.kill(worker.pid, signal.SIGKILL)
        killed.append(worker.pid)

    monkeypatch.setattr(SubprocessWorker, "submit_docs", submit_docs)
    with pytest.raises(SearcherWorkerError) as info:
        fresh_pool.doc_texts(ids)
    message = str(info.value)
    assert len(killed) == 2 and f"restarted as pid {killed[1]}, it died again" in message
    assert f"searcher worker 0 (pid {killed[1]})" in message and f"pid {killed[0]}" in message
    assert f"the text of {len(ids)} doc ids" in message and "killed by signal 9" in message


DRIVER = textwrap.dedent("""
    import os, signal, sys
    from recr1.retrieval.searcher_pool import SearcherPool
    pool = SearcherPool("bm25", sys.argv[1], num_workers=1, backend="subprocess")
    assert pool.batch_search(["red leather shoes"], 1)[0][0][0] == "shoe-red"
    print(" ".join(map(str, pool.worker_pids)), flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("end", ["exit", "kill"])
def test_no_worker_outlives_its_driver(lucene_index_dir, end):
    """A driver that exits without close (atexit closes the pool), or is killed (the worker sees its pipe close)."""
    run = subprocess.run([sys.executable, "-c", DRIVER, lucene_index_dir, end], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == (0 if end == "exit" else -signal.SIGKILL), run.stderr[-2000:]
    pids = [int(p) for p in run.stdout.split()]
    assert len(pids) == 1
    assert wait_gone(pids) == []


def test_ray_actors_after_ray_init_same_hits_restart_and_close(lucene_index_dir, plain, adversarial_queries):
    import ray

    if ray.is_initialized():
        pytest.skip("needs to start its own Ray")
    queries = KNOWN + LONG + adversarial_queries
    expected = plain.batch_search(queries, 100)
    pool = SearcherPool("bm25", lucene_index_dir, num_workers=2)  # before ray.init, as the trainer's preflight
    try:
        assert pool.backend == "subprocess"
        before = pool.worker_pids
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)  # fewer CPUs than workers: num_cpus=0
        assert pool.batch_search(queries, 100) == expected
        assert pool.backend == "ray" and wait_gone(before) == []
        actors = pool.worker_pids
        assert len(set(actors)) == 2 and all(alive(p) for p in actors)
        os.kill(actors[0], signal.SIGKILL)
        assert pool.batch_search(queries, 100) == expected
        assert pool.stats["searcher_worker_restart"] == 1 and pool.worker_pids[0] not in actors
        ids = doc_ids_to_show(plain)
        assert pool.doc_texts(ids) == plain.doc_texts(ids)
        os.kill(pool.worker_pids[0], signal.SIGKILL)
        assert pool.doc_texts(ids) == plain.doc_texts(ids)
        assert pool.stats["searcher_worker_restart"] == 2
        pids = pool.worker_pids
        pool.close()
        assert wait_gone(pids) == []
    finally:
        pool.close()
        if ray.is_initialized():
            ray.shutdown()
