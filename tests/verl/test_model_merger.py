"""``python -m verl.model_merger merge``: a 2-rank FSDP2 checkpoint (gloo, sharded DTensors, no HF weights) becomes
an HF folder, in a process with no GPU and no process group, whose logits equal the trained model's."""
import glob
import os
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from merger_testlib import probe_ids, save_two_rank_checkpoint  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def tiny_vocab(tiny_model_dir) -> int:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_model_dir).vocab_size


@pytest.fixture(scope="module")
def two_rank_checkpoint(tiny_model_dir, tiny_vocab, tmp_path_factory):
    return save_two_rank_checkpoint(tiny_model_dir, tiny_vocab, str(tmp_path_factory.mktemp("merger")), hsdp=True)


def merge(*args) -> subprocess.CompletedProcess:
    """The merger's command line in a fresh process that sees no GPU and starts no process group."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "verl.model_merger", "merge", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_two_rank_checkpoint_merges_into_an_hf_folder_with_the_trained_logits(two_rank_checkpoint, tiny_vocab,
                                                                               tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    actor_dir = os.path.join(two_rank_checkpoint, "actor")
    assert {"model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"} <= set(os.listdir(actor_dir))
    assert not glob.glob(os.path.join(actor_dir, "huggingface", "*.safetensors"))  # no hf_model: no weights

    target = str(tmp_path / "hf")
    proc = merge("--backend", "fsdp", "--local_dir", actor_dir, "--target_dir", target)
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(os.path.join(target, "model.safetensors"))
    assert os.path.isfile(os.path.join(target, "tokenizer_config.json"))
    AutoTokenizer.from_pretrained(target)

    model = AutoModelForCausalLM.from_pretrained(target)
    assert model.dtype == torch.float32  # the training dtype on CPU, as config.json names it
    with torch.no_grad():
        logits = model(input_ids=probe_ids(tiny_vocab)).logits
    trained = torch.load(os.path.join(two_rank_checkpoint, "trained_logits.pt"))
    torch.testing.assert_close(logits, trained, rtol=0, atol=0)


def test_hsdp_checkpoint_merges_back_to_the_model(two_rank_checkpoint, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    proc = merge("--backend", "fsdp", "--local_dir", os.path.join(two_rank_checkpoint, "hsdp"),
                 "--target_dir", str(tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    merged, original = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(
        os.path.join(tiny_model_dir, "model.safetensors"))
    assert merged.keys() == original.keys()
    assert all(torch.equal(merged[k], original[k]) for k in original)


def test_dtype_override(two_rank_checkpoint, tmp_path):
    from safetensors.torch import load_file

    proc = merge("--backend", "fsdp", "--local_dir", os.path.join(two_rank_checkpoint, "actor"),
                 "--target_dir", str(tmp_path / "bf16"), "--dtype", "bf16")
    assert proc.returncode == 0, proc.stderr
    assert {t.dtype for t in load_file(str(tmp_path / "bf16" / "model.safetensors")).values()} == {torch.bfloat16}


def test_missing_rank_file_is_named(two_rank_checkpoint, tmp_path):
    partial = tmp_path / "actor"
    os.makedirs(partial)
    os.symlink(os.path.join(two_rank_checkpoint, "actor", "model_world_size_2_rank_0.pt"),
               partial / "model_world_size_2_rank_0.pt")
    os.symlink(os.path.join(two_rank_checkpoint, "actor", "huggingface"), partial / "huggingface")
    proc = merge("--backend", "fsdp", "--local_dir", str(partial), "--target_dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "model_world_size_2_rank_1.pt" in proc.stderr


def test_folder_without_shards_is_explained(tmp_path):
    proc = merge("--backend", "fsdp", "--local_dir", str(tmp_path), "--target_dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "no model_world_size_W_rank_r.pt" in proc.stderr


def test_a_global_step_folder_means_its_actor(two_rank_checkpoint, tmp_path):
    """``--local_dir global_step_N`` (what users copy from the checkpoint tree) merges the actor."""
    from safetensors.torch import load_file

    step = tmp_path / "global_step_3"
    os.makedirs(step)
    os.symlink(os.path.join(two_rank_checkpoint, "actor"), step / "actor")
    proc = merge("--backend", "fsdp", "--local_dir", str(step), "--target_dir", str(tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    from verl.model_merger import merge_fsdp_checkpoint

    merge_fsdp_checkpoint(str(step / "actor"), str(tmp_path / "direct"))
    a = load_file(str(tmp_path / "hf" / "model.safetensors"))
    b = load_file(str(tmp_path / "direct" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hf_model_path_finds_or_merges_the_weights(two_rank_checkpoint, tiny_model_dir, tmp_path):
    """What the evaluation commands load for a model argument: HF folders and hub ids as they are; a checkpoint
    (global_step_N, its actor, its actor/huggingface) through its shards, merged once."""
    from verl.model_merger import hf_model_path

    step = tmp_path / "global_step_3"
    os.makedirs(step)
    os.symlink(os.path.join(two_rank_checkpoint, "actor"), step / "actor")
    merged = str(tmp_path / "merged")
    assert hf_model_path(tiny_model_dir, merged) == tiny_model_dir
    assert hf_model_path("Qwen/Qwen2.5-3B-Instruct", merged) == "Qwen/Qwen2.5-3B-Instruct"
    assert not os.path.exists(merged)
    assert hf_model_path(str(step), merged) == merged
    weights = os.path.join(merged, "model.safetensors")
    written = os.stat(weights).st_mtime_ns
    for form in (step / "actor", step / "actor" / "huggingface"):
        assert hf_model_path(str(form), merged) == merged
    assert os.stat(weights).st_mtime_ns == written  # merged once, then reused
