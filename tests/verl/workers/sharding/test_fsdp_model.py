"""Which dtype ``build_fsdp_causal_lm`` keeps a model's weights in: fp32 master weights for a trainable model, the
compute dtype (``mixed_precision.param_dtype``) for a frozen one (reference, rollout-only), on CPU and GPU alike."""
import pytest
import torch
from omegaconf import OmegaConf

from verl.utils.fsdp_utils import build_device_mesh
from verl.workers.sharding import build_fsdp_causal_lm
from verl.workers.sharding.fsdp_model import model_dtype

BF16 = {"mixed_precision": {"param_dtype": "bf16", "reduce_dtype": "fp32"}}
FP32 = {"mixed_precision": {"param_dtype": "fp32"}}


@pytest.mark.parametrize(
    "fsdp_config, device, frozen",
    [
        (None, "cpu", torch.float32),
        (BF16, "cpu", torch.bfloat16),
        (None, "cuda", torch.bfloat16),
        # a full-precision run on GPU: the reference must not be a bf16-rounded copy of the actor
        (FP32, "cuda", torch.float32),
    ],
)
def test_frozen_weights_follow_the_compute_dtype_trainable_stay_fp32(fsdp_config, device, frozen):
    assert model_dtype(fsdp_config, device, trainable=False) == frozen
    assert model_dtype(fsdp_config, device, trainable=True) == torch.float32


def test_bf16_mixed_precision_on_cpu_loads_a_frozen_model_in_bf16_a_trainable_one_in_fp32(cpu_group, tiny_model_dir):
    model_cfg = OmegaConf.create({"path": tiny_model_dir})
    mesh = build_device_mesh("cpu")
    frozen = build_fsdp_causal_lm(model_cfg, BF16, mesh, "cpu", trainable=False)
    trainable = build_fsdp_causal_lm(model_cfg, BF16, mesh, "cpu", trainable=True)
    assert {p.dtype for p in frozen.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in frozen.parameters())
    assert {p.dtype for p in trainable.parameters()} == {torch.float32}


def test_a_frozen_model_holds_no_gathered_weights_after_a_forward_a_trainable_root_waits_for_backward(
        cpu_group, tiny_model_dir):
    """The reference never runs backward: a root kept gathered after forward (as the actor's is, for its backward)
    would hold the embedding (~0.6 GB bf16 for Qwen2.5-3B) for the whole run."""
    from verl.utils.fsdp_utils import is_sharded

    model_cfg = OmegaConf.create({"path": tiny_model_dir})
    mesh = build_device_mesh("cpu")
    ids = torch.arange(1, 9).unsqueeze(0)
    frozen = build_fsdp_causal_lm(model_cfg, None, mesh, "cpu", trainable=False, force_fsdp2=True)
    with torch.no_grad():
        frozen(input_ids=ids)
    assert is_sharded(frozen)
    trainable = build_fsdp_causal_lm(model_cfg, None, mesh, "cpu", trainable=True, force_fsdp2=True)
    trainable(input_ids=ids).logits.sum().backward()
    assert is_sharded(trainable)
