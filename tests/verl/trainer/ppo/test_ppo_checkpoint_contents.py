"""What a trainer save writes through the actor worker's FSDPCheckpointManager (one in-process GRPO step, save_freq
1): verl's default contents leave the HF weights out of huggingface/ (config, generation config and tokenizer only);
hf_model writes them in the training dtype (bf16 under bf16 mixed precision), equal to what the merger builds."""
import glob
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from verl.model_merger import merge_fsdp_checkpoint  # noqa: E402
from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402


def saved_actor(model_dir: str, work_dir: str, **extra) -> str:
    """global_step_1/actor of a one-step run that saves at step 1."""
    run_ppo(load_config(toy_overrides(model_dir, work_dir, **{
        "trainer.total_training_steps": 1, "trainer.save_freq": 1, **extra})))
    return os.path.join(work_dir, "ckpt", "global_step_1", "actor")


def test_default_save_writes_config_and_tokenizer_but_no_hf_weights(tiny_model_dir, tmp_path, one_thread,
                                                                     clean_process):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    actor = saved_actor(tiny_model_dir, str(tmp_path))
    hf_dir = os.path.join(actor, "huggingface")
    assert not glob.glob(os.path.join(hf_dir, "*.safetensors")) and not glob.glob(os.path.join(hf_dir, "*.bin"))
    assert {"model_world_size_1_rank_0.pt", "optim_world_size_1_rank_0.pt",
            "extra_state_world_size_1_rank_0.pt", "fsdp_config.json"} <= set(os.listdir(actor))
    assert AutoConfig.from_pretrained(hf_dir).architectures == ["Qwen2ForCausalLM"]
    AutoTokenizer.from_pretrained(hf_dir)
    GenerationConfig.from_pretrained(hf_dir)


def test_hf_model_with_bf16_mixed_precision_exports_bf16(tiny_model_dir, tmp_path, one_thread, clean_process):
    actor = saved_actor(tiny_model_dir, str(tmp_path), **{
        "actor_rollout_ref.actor.checkpoint.save_contents": "[model,optimizer,extra,hf_model]",
        "actor_rollout_ref.actor.fsdp_config.mixed_precision": "{param_dtype:bf16}"})
    hf_dir = os.path.join(actor, "huggingface")
    exported = load_file(os.path.join(hf_dir, "model.safetensors"))
    assert {t.dtype for t in exported.values()} == {torch.bfloat16}  # not the fp32 master weights
    with open(os.path.join(hf_dir, "config.json")) as f:
        config = json.load(f)
    assert config["dtype"] == "bfloat16"
    assert config["use_cache"] is True  # training turned the KV cache off; the exported model generates with it
    # the merger, reading the fp32 shards, writes the very same tensors
    merged = load_file(os.path.join(merge_fsdp_checkpoint(actor, str(tmp_path / "merged")), "model.safetensors"))
    assert merged.keys() == exported.keys()
    assert all(torch.equal(merged[k], exported[k]) for k in exported)


def test_legacy_contents_key(tiny_model_dir, tmp_path, one_thread, clean_process):
    actor = saved_actor(tiny_model_dir, str(tmp_path), **{
        "actor_rollout_ref.actor.checkpoint.contents": "[model,extra,hf_model]"})
    files = set(os.listdir(actor))
    assert "model_world_size_1_rank_0.pt" in files and "optim_world_size_1_rank_0.pt" not in files
    assert os.path.isfile(os.path.join(actor, "huggingface", "model.safetensors"))
