"""DataParallelPPOCritic: value head on the FSDP2-sharded tiny Qwen2 backbone (CPU, fp32, one gloo rank)."""
import math

import pytest
import torch

from verl.protocol import DataProto
from workers_testlib import critic_config, full_params, ppo_batch, sharded_critic


def test_values_are_masked_and_identical_with_remove_padding(cpu_group, tiny_model_dir, tiny_vocab):
    data = ppo_batch(vocab_size=tiny_vocab)
    meta = {"micro_batch_size": 3}
    padded = sharded_critic(tiny_model_dir).compute_values(DataProto(batch=data.batch, meta_info=meta))
    packed = sharded_critic(tiny_model_dir, critic_config(use_remove_padding=True)).compute_values(
        DataProto(batch=data.batch, meta_info=meta)
    )
    mask = data.batch["response_mask"]
    assert padded.shape == mask.shape
    assert torch.all(padded[mask == 0] == 0) and torch.any(padded[mask == 1] != 0)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)


def test_update_changes_every_parameter(cpu_group, tiny_model_dir, tiny_vocab):
    critic = sharded_critic(tiny_model_dir, critic_config(ppo_micro_batch_size_per_gpu=4))
    data = ppo_batch(vocab_size=tiny_vocab)
    before = full_params(critic.critic_module)
    metrics = critic.update_critic(data)
    after = full_params(critic.critic_module)
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    for key in ("vf_loss", "vf_clipfrac", "vpred_mean", "grad_norm"):
        assert math.isfinite(metrics[f"critic/{key}"][0]), key


@pytest.mark.parametrize("variant", [{"ppo_micro_batch_size_per_gpu": 1}, {"use_dynamic_bsz": True}], ids=["8x1", "dynamic"])
def test_one_update_does_not_depend_on_micro_batching(cpu_group, tiny_model_dir, tiny_vocab, variant):
    results = []
    for overrides in ({"ppo_micro_batch_size_per_gpu": 8}, variant):
        critic = sharded_critic(tiny_model_dir, critic_config(ppo_max_token_len_per_gpu=30, **overrides), optimizer="sgd")
        metrics = critic.update_critic(ppo_batch(vocab_size=tiny_vocab, seed=5))
        results.append((full_params(critic.critic_module), metrics))
    (ref_params, ref_metrics), (params, metrics) = results
    for name in ref_params:
        torch.testing.assert_close(params[name], ref_params[name], atol=1e-5, rtol=0, msg=name)
    for key in ("critic/vf_loss", "critic/vf_clipfrac", "critic/vpred_mean"):
        assert metrics[key][0] == pytest.approx(ref_metrics[key][0], abs=1e-6), key


def test_dr_grpo_value_loss_uses_the_loss_scale_factor(cpu_group, tiny_model_dir, tiny_vocab):
    """critic.loss_scale_factor (verl interpolates it from the actor's) reaches the value loss: with
    seq-mean-token-sum-norm it is 0.5 * mean_i sum_t max((v - R)^2, (clip(v, V +- 0.5) - R)^2) / 4 over the 8
    sequences, accumulated over micro-batches of 3 rows."""
    cfg = critic_config(loss_agg_mode="seq-mean-token-sum-norm", loss_scale_factor=4.0, ppo_micro_batch_size_per_gpu=3,
                        cliprange_value=0.5)
    critic = sharded_critic(tiny_model_dir, cfg, optimizer="sgd")
    data = ppo_batch(vocab_size=tiny_vocab, seed=5)
    vpreds = critic.compute_values(DataProto(batch=data.batch, meta_info={"micro_batch_size": 8}))
    b = data.batch
    clipped = torch.clamp(vpreds, b["values"] - 0.5, b["values"] + 0.5)
    per_token = torch.maximum((vpreds - b["returns"]) ** 2, (clipped - b["returns"]) ** 2) * b["response_mask"]
    expected = 0.5 * float(per_token.sum(-1).mean()) / 4.0
    metrics = critic.update_critic(data)
    assert metrics["critic/vf_loss"][0] == pytest.approx(expected, rel=1e-5)
