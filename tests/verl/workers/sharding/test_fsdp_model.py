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
