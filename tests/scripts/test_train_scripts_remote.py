"""scripts/train/*.sh with RETRIEVAL_URL (DRY_RUN=1): the reward searches a retrieval server, checked before the run."""
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
