"""scripts/data/*.sh and scripts/eval/eval_checkpoint.sh chained on small offline data, then a DRY_RUN on top."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(script, env, *args):
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHON": sys.executable, **env})
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def save_checkpoint_without_hf_weights(actor_dir: str) -> None:
    """A tiny policy's one-rank sharded checkpoint with verl's default contents (model, optimizer, extra)."""
    code = ("import sys, tempfile\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager\n"
            "from verl.utils.tiny_model import save_tiny_model\n"
            "d = save_tiny_model(tempfile.mkdtemp(), layers=1, hidden=64, heads=2, seed=0)\n"
            "FSDPCheckpointManager(AutoModelForCausalLM.from_pretrained(d), processing_class=AutoTokenizer."
            "from_pretrained(d), checkpoint_contents={}).save_checkpoint(sys.argv[1])\n")
    subprocess.run([sys.executable, "-c", code, actor_dir], cwd=ROOT, check=True, capture_output=True, timeout=300)


@pytest.mark.slow
def test_synthetic_prep_index_eval_and_dry_run_chain(tmp_path):
    out = tmp_path / "amazon_c4"
    run("data/prepare_amazon_c4.sh", {"SYNTHETIC": "1", "SYNTHETIC_ITEMS": "300", "SYNTHETIC_REQUESTS": "80",
                                      "RAW_DIR": str(out / "raw"), "OUT_DIR": str(out), "TEMPLATES": "sparse",
                                      "VAL_SIZE": "5"})
    train = pd.read_parquet(out / "sparse" / "train.parquet")
    assert len(train) > 0 and set(train["data_source"]) == {"amazon_c4_train"}
    assert (out / "sparse" / "test.parquet").is_file() and not (out / "dense").exists()
    corpus_rows = sum(1 for f in (out / "corpus").glob("part-*.jsonl") for _ in open(f))
    assert corpus_rows == 300

    run("data/build_index.sh", {"KIND": "bm25", "CORPUS": str(out / "corpus"), "INDEX_ROOT": str(out / "index"),
                                "THREADS": "1", "JVM_HEAP": "512m"})
    assert (out / "index" / "lucene" / "docids.txt").is_file()

    run("eval/eval_checkpoint.sh", {"DATA_DIR": str(out / "sparse"), "BM25_INDEX": str(out / "index" / "lucene"),
                                    "DENSE_INDEX": str(out / "index" / "none"), "OUT_DIR": str(tmp_path / "eval")})
    metrics = json.loads((tmp_path / "eval" / "bm25" / "metrics.json").read_text())
    assert metrics["model"] is None and 0.0 < metrics["table"]["all"]["ndcg@100"] <= 1.0

    # a trainer checkpoint saved with verl's default contents: huggingface/ has no weights, the script merges them
    step = tmp_path / "ckpt" / "global_step_1"
    save_checkpoint_without_hf_weights(str(step / "actor"))
    run("eval/eval_checkpoint.sh", {"DATA_DIR": str(out / "sparse"), "BM25_INDEX": str(out / "index" / "lucene"),
                                    "RETRIEVERS": "bm25", "MODEL": str(step), "OUT_DIR": str(tmp_path / "eval_ckpt"),
                                    "LIMIT": "4", "MAX_NEW_TOKENS": "8"})
    merged = tmp_path / "eval_ckpt" / "hf_model"
    assert (merged / "model.safetensors").is_file()
    assert json.loads((tmp_path / "eval_ckpt" / "bm25" / "metrics.json").read_text())["model"] == str(merged)

    proc = run("train/train_rec-amazon_c4_3b.sh", {"DRY_RUN": "1", "DATA_DIR": str(out / "sparse"),
                                                   "INDEX_DIR": str(out / "index" / "lucene")})
    assert "DRY_RUN ok" in proc.stderr


def test_esci_prep_keeps_one_corpus(tmp_path):
    run("data/prepare_esci.sh", {"RAW_DIR": os.path.join(ROOT, "data", "fixtures", "esci"), "OUT_DIR": str(tmp_path),
                                 "VAL_SIZE": "2"})
    for template in ("sparse", "dense"):
        assert (tmp_path / template / "train.parquet").is_file()
        assert not (tmp_path / template / "corpus").exists()
    assert list((tmp_path / "corpus").glob("part-*.jsonl"))
    sparse = pd.read_parquet(tmp_path / "sparse" / "train.parquet")["prompt"][0][0]["content"]
    dense = pd.read_parquet(tmp_path / "dense" / "train.parquet")["prompt"][0][0]["content"]
    assert sparse != dense
