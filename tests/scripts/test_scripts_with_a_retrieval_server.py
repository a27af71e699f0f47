"""The cluster scripts with RETRIEVAL_URL: training (DRY_RUN=1) has the reward search a retrieval server, checked
before the run; the evaluation script retrieves there."""
import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "train", "train_rec-esci_3b.sh")  # execs the Amazon-C4 script
EVAL_SCRIPT = os.path.join(ROOT, "scripts", "eval", "eval_checkpoint.sh")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A retrieval server over a three-product Lucene index."""
    from recr1.retrieval.build_lucene import build_lucene_index
    from recr1.retrieval.server_process import ServerProcess

    folder = tmp_path_factory.mktemp("served")
    (folder / "corpus").mkdir()
    with open(folder / "corpus" / "c.jsonl", "w") as f:
        for i, text in enumerate(["red shoes", "steel knife", "green tea"]):
            f.write(json.dumps({"id": f"p{i}", "contents": text}) + "\n")
    build_lucene_index(str(folder / "corpus"), str(folder / "index"), threads=1)
    with ServerProcess(str(folder / "index"), "bm25", log_path=str(folder / "serve.log")) as s:
        yield s


def dry_run(tmp_path, url):
    frame = pd.DataFrame({"data_source": ["esci_train"], "prompt": [[{"role": "user", "content": "hi"}]]})
    for name in ("train", "val"):
        frame.to_parquet(tmp_path / f"{name}.parquet")
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA_DIR": str(tmp_path),
           "INDEX_DIR": str(tmp_path / "no_index_here"), "RETRIEVAL_URL": url}  # fmt: skip
    proc = subprocess.run(["bash", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, yaml.safe_load(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def test_retrieval_url_makes_the_reward_remote_and_needs_no_index(server, tmp_path):
    rc, cfg, err = dry_run(tmp_path, server.url)
    assert rc == 0, err
    kwargs = cfg["custom_reward_function"]["reward_kwargs"]
    assert (kwargs["retriever"], kwargs["url"], kwargs["index"]) == ("remote", server.url, None)
    assert "no_index_here" not in err


def test_a_server_that_does_not_answer_fails_the_check_naming_the_url(tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}"
    rc, cfg, err = dry_run(tmp_path, refused)
    assert rc != 0 and cfg["custom_reward_function"]["reward_kwargs"]["url"] == refused
    assert f"retrieval server not usable (RETRIEVAL_URL): retrieval server {refused} does not answer" in err


def test_the_eval_script_retrieves_from_the_server(server, tmp_path):
    from recr1.data.records import make_row, write_rows

    rows = [make_row(data_source="amazon_c4_Baby_test", request=request, target=[target], split="test", index=i,
                     qid=f"q{i}", category="Baby")
            for i, (request, target) in enumerate([("red shoes please", "p0"), ("a steel knife", "p1")])]  # fmt: skip
    write_rows(rows, str(tmp_path / "test.parquet"))
    env = {**os.environ, "PYTHON": sys.executable, "DATA": str(tmp_path / "test.parquet"),
           "OUT_DIR": str(tmp_path / "out"), "RETRIEVAL_URL": server.url, "BM25_INDEX": str(tmp_path / "none"),
           "DENSE_INDEX": str(tmp_path / "none")}  # fmt: skip
    proc = subprocess.run(["bash", EVAL_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "out" / "remote" / "metrics.json").read_text())
    assert metrics["retriever"] == "remote" and server.url in metrics["index"]
    assert metrics["table"]["amazon_c4_Baby_test"]["ndcg@10"] == 1.0  # both targets ranked first
