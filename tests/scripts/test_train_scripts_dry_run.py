"""scripts/train/*.sh with DRY_RUN=1: Rec-R1's settings reach the resolved config; bad paths and keys are caught."""
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAIN = os.path.join(ROOT, "scripts", "train")


@pytest.fixture()
def layout(tmp_path):
    """DATA_DIR with train/val parquet files and index folders that pass the existence checks."""
    data = tmp_path / "data"
    data.mkdir()
    frame = pd.DataFrame({"data_source": ["amazon_c4_train"], "prompt": [[{"role": "user", "content": "hi"}]]})
    for name in ("train", "val"):
        frame.to_parquet(data / f"{name}.parquet")
    (tmp_path / "lucene").mkdir()
    (tmp_path / "lucene" / "segments_1").write_bytes(b"")
    (tmp_path / "dense").mkdir()
    (tmp_path / "dense" / "index.faiss").write_bytes(b"")
    return tmp_path


def dry_run(script, env, *overrides):
    full_env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, **env}
    proc = subprocess.run(["bash", os.path.join(TRAIN, script), *overrides], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)
    config = None
    if proc.stdout.strip():
        config = yaml.safe_load(proc.stdout)
    return proc.returncode, config, proc.stderr


def test_amazon_c4_3b_resolves_rec_r1_settings(layout):
    rc, cfg, err = dry_run("train_rec-amazon_c4_3b.sh", {
        "DATA_DIR": str(layout / "data"), "INDEX_DIR": str(layout / "lucene"), "N_GPUS": "4", "ROLLOUT_TP_SIZE": "2",
        "BASE_MODEL": "Qwen/Qwen2.5-3B-Instruct", "EXPERIMENT_NAME": "exp-x"})
    assert rc == 0, err
    assert "DRY_RUN ok" in err
    actor, rollout = cfg["actor_rollout_ref"]["actor"], cfg["actor_rollout_ref"]["rollout"]
    assert cfg["algorithm"]["adv_estimator"] == "grpo"
    assert cfg["data"]["train_files"] == str(layout / "data" / "train.parquet")
    assert (cfg["data"]["train_batch_size"], cfg["data"]["max_prompt_length"], cfg["data"]["max_response_length"]) \
        == (32, 256, 512)
    assert cfg["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen2.5-3B-Instruct"
    assert cfg["actor_rollout_ref"]["model"]["use_remove_padding"] is True
    assert cfg["actor_rollout_ref"]["model"]["enable_gradient_checkpointing"] is True
    assert actor["optim"]["lr"] == 1e-6 and actor["ppo_mini_batch_size"] == 8
    assert (actor["use_kl_loss"], actor["kl_loss_coef"], actor["kl_loss_type"]) == (True, 0.001, "low_var_kl")
    assert (rollout["name"], rollout["n"], rollout["temperature"], rollout["top_p"]) == ("vllm", 12, 0.6, 0.95)
    assert rollout["gpu_memory_utilization"] == 0.3 and rollout["tensor_model_parallel_size"] == 2
    assert cfg["reward_model"]["reward_manager"] == "batch"
    assert cfg["custom_reward_function"]["path"] == "recr1.reward"
    assert cfg["custom_reward_function"]["name"] == "compute_score_batch"
    assert cfg["custom_reward_function"]["reward_kwargs"] == {"retriever": "bm25", "index": str(layout / "lucene")}
    t = cfg["trainer"]
    assert (t["n_gpus_per_node"], t["save_freq"], t["test_freq"], t["total_epochs"]) == (4, 200, 10, 50)
    assert t["experiment_name"] == "exp-x" and t["project_name"] == "Rec-R1" and "wandb" in t["logger"]


def test_the_esci_dense_variant_keeps_the_recipe_and_passes_overrides_through(layout):
    rc, cfg, err = dry_run("train_rec-esci_3b_dense.sh", {"DATA_DIR": str(layout / "data"),
                                                          "INDEX_DIR": str(layout / "dense")}, "trainer.total_epochs=2")
    assert rc == 0, err
    assert cfg["custom_reward_function"]["reward_kwargs"] == {"retriever": "dense", "index": str(layout / "dense")}
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 12 and cfg["actor_rollout_ref"]["actor"]["optim"]["lr"] == 1e-6
    assert cfg["trainer"]["total_epochs"] == 2 and cfg["trainer"]["experiment_name"].startswith("esci-dense")


def test_missing_data_and_index_are_named(tmp_path):
    (tmp_path / "lucene").mkdir()
    (tmp_path / "lucene" / "segments_1").write_bytes(b"")  # a BM25 index is not a dense one
    rc, _, err = dry_run("train_rec-amazon_c4_3b_dense.sh", {"DATA_DIR": str(tmp_path / "nodata"),
                                                             "INDEX_DIR": str(tmp_path / "lucene"),
                                                             "BASE_MODEL": str(tmp_path / "nomodel")})
    assert rc != 0 and "DRY_RUN found problems" in err
    assert f"missing data file: {tmp_path / 'nodata' / 'train.parquet'}" in err
    assert f"missing data file: {tmp_path / 'nodata' / 'val.parquet'}" in err
    assert f"missing dense index: {tmp_path / 'lucene'} has no index.faiss" in err
    assert f"missing model folder: {tmp_path / 'nomodel'}" in err


def test_a_bad_override_fails_naming_the_key(layout):
    env = {"DATA_DIR": str(layout / "data"), "INDEX_DIR": str(layout / "lucene")}
    rc, _, err = dry_run("train_rec-amazon_c4_3b.sh", env, "trainer.totl_epochs=3")
    assert rc != 0 and "trainer.totl_epochs" in err and "trainer.total_epochs" in err
    rc, _, err = dry_run("train_rec-amazon_c4_3b.sh", env, "actor_rollout_ref.actor.ppo_mini_batch_size=5")
    assert rc != 0 and "ppo_mini_batch_size=5" in err


def test_amazon_review_3b_keeps_the_recipe_with_rec_r1s_seqrec_differences(layout):
    rc, cfg, err = dry_run("train_rec-amazon_review_3b.sh", {
        "DATA_DIR": str(layout / "data"), "INDEX_DIR": str(layout / "lucene"), "CATEGORY": "All_Beauty"},
        "trainer.total_epochs=3")
    assert rc == 0, err
    assert cfg["data"]["max_prompt_length"] == 512 and cfg["data"]["max_response_length"] == 512
    assert cfg["trainer"]["save_freq"] == 100 and cfg["trainer"]["test_freq"] == 10
    assert cfg["trainer"]["total_epochs"] == 3  # the caller's overrides still win
    assert cfg["trainer"]["experiment_name"] == "amazon_review-All_Beauty-bm25-qwen2.5-3b-grpo"
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert (rollout["n"], rollout["temperature"], cfg["actor_rollout_ref"]["actor"]["optim"]["lr"]) == (12, 0.6, 1e-6)
    assert cfg["custom_reward_function"]["name"] == "compute_score_batch"
    assert cfg["custom_reward_function"]["reward_kwargs"] == {"retriever": "bm25", "index": str(layout / "lucene")}

