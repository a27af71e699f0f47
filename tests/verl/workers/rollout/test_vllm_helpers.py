"""The vLLM rollout's pure helpers and the weight stream, which need no vLLM (these run in the main environment too).

What needs the engine itself lives in test_vllm_rollout.py / test_vllm_multi_rank.py / test_vllm_grpo.py.
"""
import pytest
import torch
from omegaconf import OmegaConf

from verl.workers.rollout.base import resolve_sampling
from verl.workers.rollout.vllm_rollout import pad_responses, unpad_prompts, vllm_dtype
from verl.workers.rollout.vllm_weight_sync import hf_param_name, iter_full_weights

PAD, EOS = 0, 9


def test_pad_responses_cuts_after_first_eos_and_pads():
    responses, mask = pad_responses([[5, 6, EOS, 7], [5], [EOS], [1, 2, 3, 4, 5, 6]], 5, [EOS, 8], PAD)
    assert responses.tolist() == [[5, 6, EOS, PAD, PAD], [5, PAD, PAD, PAD, PAD], [EOS, PAD, PAD, PAD, PAD],
                                  [1, 2, 3, 4, 5]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_pad_responses_second_eos_id_and_pad_equal_to_eos():
    responses, mask = pad_responses([[3, 8, 3]], 4, [EOS, 8], EOS)
    assert responses.tolist() == [[3, 8, EOS, EOS]] and mask.tolist() == [[1, 1, 0, 0]]


def test_unpad_prompts_uses_the_attention_mask():
    ids = torch.tensor([[0, 0, 4, 5], [1, 2, 3, 0]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert unpad_prompts(ids, mask) == [[4, 5], [1, 2, 3]]
    with pytest.raises(ValueError, match="row 1 is empty"):
        unpad_prompts(ids, torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]]))


def test_resolve_sampling_precedence():
    cfg = OmegaConf.create({"do_sample": True, "temperature": 0.7, "top_k": 0, "top_p": 0.9,
                            "val_kwargs": {"do_sample": False, "temperature": 0, "top_k": -1, "top_p": 1.0}})
    assert resolve_sampling(cfg, {}) == {"do_sample": True, "temperature": 0.7, "top_k": -1, "top_p": 0.9}
    assert resolve_sampling(cfg, {"do_sample": False})["do_sample"] is False
    assert resolve_sampling(cfg, {"temperature": 0.0})["do_sample"] is False  # temperature 0 means greedy
    assert resolve_sampling(cfg, {"validate": True})["do_sample"] is False
    assert resolve_sampling(OmegaConf.create({"top_k": 5}), {})["top_k"] == 5


def test_vllm_dtype_names():
    assert vllm_dtype("bf16") == "bfloat16" and vllm_dtype(torch.float32) == "float32"
    with pytest.raises(ValueError, match="rollout.dtype='int3'"):
        vllm_dtype("int3")


def test_hf_param_name_strips_wrappers():
    wrapped = "model.layers.0._checkpoint_wrapped_module.mlp.up_proj.weight"
    assert hf_param_name(wrapped) == "model.layers.0.mlp.up_proj.weight"
    assert hf_param_name("_orig_mod.model.norm.weight") == "model.norm.weight"


def test_weight_stream_is_the_hf_checkpoint_layer_by_layer(tiny_model_dir):
    """From the FSDP2 actor: HF names, full shapes and values, the tied lm_head once, each layer contiguous."""
    from transformers import AutoModelForCausalLM

    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.sharding import build_fsdp_causal_lm

    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    mesh = build_device_mesh("cpu")
    model_cfg = OmegaConf.create({"path": tiny_model_dir, "override_config": {}, "enable_gradient_checkpointing": True})
    actor = build_fsdp_causal_lm(model_cfg, None, mesh, "cpu", trainable=True)

    stream = list(iter_full_weights(actor, dtype=torch.bfloat16))
    names = [name for name, _ in stream]
    assert len(names) == len(set(names))
    assert set(names) == set(reference) - {"lm_head.weight"}  # tied: vLLM takes it from embed_tokens
    for name, tensor in stream:
        assert tensor.dtype == torch.bfloat16 and not hasattr(tensor, "device_mesh")
        torch.testing.assert_close(tensor, reference[name].to(torch.bfloat16), rtol=0, atol=0, msg=name)
    layer_of = [int(n.split(".")[2]) for n in names if n.startswith("model.layers.")]
    assert layer_of == sorted(layer_of), "the parameters of one decoder layer must come out together"


def test_external_launcher_gets_the_visible_device_index_as_local_rank(monkeypatch):
    """Under Ray, rank 1 has LOCAL_RANK=1 and sees one GPU: vLLM must be told LOCAL_RANK=0 (it builds
    cuda:{LOCAL_RANK}) while the engine is built, and the worker's own value comes back afterwards."""
    import os

    import torch.distributed as dist

    from verl.utils.device_plan import plan_device
    from verl.workers.rollout.vllm_rollout import external_launcher_env

    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    with external_launcher_env(plan_device("cuda").vllm_local_rank):
        assert os.environ["LOCAL_RANK"] == "0"
        assert os.environ["RANK"] == "1" and os.environ["MASTER_PORT"]
    assert os.environ["LOCAL_RANK"] == "1" and "MASTER_PORT" not in os.environ
