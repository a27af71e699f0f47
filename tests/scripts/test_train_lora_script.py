"""scripts/train/train_rec-amazon_c4_7b_lora.sh with DRY_RUN=1: the LoRA settings and the 7B base reach the
resolved config on top of Rec-R1's recipe."""
from test_train_scripts_dry_run import dry_run, layout  # noqa: F401


def test_7b_lora_script_resolves_lora_on_rec_r1_recipe(layout):  # noqa: F811
    rc, cfg, err = dry_run("train_rec-amazon_c4_7b_lora.sh", {
        "DATA_DIR": str(layout / "data"), "INDEX_DIR": str(layout / "lucene"), "N_GPUS": "2", "ROLLOUT_TP_SIZE": "2"})
    assert rc == 0, err
    model, actor = cfg["actor_rollout_ref"]["model"], cfg["actor_rollout_ref"]["actor"]
    assert model["path"] == "Qwen/Qwen2.5-7B-Instruct"
    assert (model["lora_rank"], model["lora_alpha"], model["target_modules"]) == (64, 32, "all-linear")
    assert actor["optim"]["lr"] == 3e-6 and actor["fsdp_config"]["optimizer_offload"] is True
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 12 and cfg["trainer"]["n_gpus_per_node"] == 2
    assert cfg["trainer"]["experiment_name"] == "amazon_c4-bm25-qwen2.5-7b-lora-grpo"
