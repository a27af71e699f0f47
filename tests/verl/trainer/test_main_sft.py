"""python -m verl.trainer.main_sft on the tiny model: loss on the response only, HF export, micro-batch invariance."""
import json
import os

import pandas as pd
import pytest
import torch

from verl.trainer.main_sft import load_sft_config, run_sft

PAIRS = [("say red", "red red red"), ("say blue", "blue blue blue"), ("say green", "green green green"),
         ("say shoes", "shoes shoes shoes")] * 2


def sft_overrides(model_dir, tmp_path, **extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "sft.parquet"
    pd.DataFrame({"prompt": [p for p, _ in PAIRS], "response": [r for _, r in PAIRS]}).to_parquet(path)
    base = {"data.train_files": str(path), "data.val_files": str(path), "data.train_batch_size": 8,
            "data.micro_batch_size_per_gpu": 4, "data.max_length": 32, "model.partial_pretrain": model_dir,
            "optim.lr": 3e-3, "optim.warmup_steps_ratio": 0.0, "optim.lr_scheduler": "constant",
            "trainer.device": "cpu", "trainer.total_training_steps": 12, "trainer.logger": "[console]",
            "trainer.default_local_dir": str(tmp_path / "out")}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_sft_learns_the_responses_and_exports_hf(tiny_model_dir, tmp_path, one_thread, clean_process):
    from transformers import AutoModelForCausalLM

    metrics = run_sft(load_sft_config(sft_overrides(tiny_model_dir, tmp_path)))
    rows = [json.loads(line) for line in open(tmp_path / "out" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert rows[-1]["train/loss"] < 0.5 * rows[0]["train/loss"]
    assert metrics["val/loss"] < rows[0]["train/loss"]
    hf_dir = tmp_path / "out" / "global_step_12" / "huggingface"
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir))
    assert open(tmp_path / "out" / "latest_checkpointed_iteration.txt").read() == "12"
    assert sum(p.numel() for p in model.parameters()) > 0


def test_one_step_is_the_same_for_micro_batch_1_and_8(tiny_model_dir, tmp_path, one_thread, clean_process):
    from verl.trainer.fsdp_sft_trainer import FSDPSFTTrainer

    params = []
    for micro in (1, 8):
        torch.manual_seed(0)
        cfg = load_sft_config(sft_overrides(tiny_model_dir, tmp_path / str(micro), **{
            "data.micro_batch_size_per_gpu": micro, "data.shuffle": False, "data.val_files": "null"}))
        trainer = FSDPSFTTrainer(cfg)
        trainer.training_step(next(iter(trainer.loader)))
        params.append({k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
                       for k, v in trainer.model.state_dict().items()})
    for key in params[0]:
        torch.testing.assert_close(params[0][key], params[1][key], rtol=1e-5, atol=1e-5, msg=key)
