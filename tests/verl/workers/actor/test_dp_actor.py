"""DataParallelPPOActor on the FSDP2-sharded tiny Qwen2 (CPU, fp32, one gloo rank)."""
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import AutoModelForCausalLM

from verl.protocol import DataProto
from verl.trainer.ppo import core_algos
from workers_testlib import actor_config, full_params, ppo_batch, sharded_actor, with_old_log_probs


def _direct_log_probs(model_dir, data, temperature):
    """Reference: a plain HF forward over the padded batch, log-softmax of logits / temperature."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    b = data.batch
    with torch.no_grad():
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], position_ids=b["position_ids"]).logits
    r = b["responses"].shape[-1]
    logp_all = torch.log_softmax(logits[:, -r - 1 : -1].float() / temperature, dim=-1)
    log_probs = logp_all.gather(-1, b["responses"].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return log_probs, entropy


@pytest.mark.parametrize("use_remove_padding", [False, True])
def test_compute_log_prob_matches_a_direct_forward(cpu_group, tiny_model_dir, tiny_vocab, use_remove_padding):
    actor = sharded_actor(tiny_model_dir, use_remove_padding=use_remove_padding)
    data = ppo_batch(vocab_size=tiny_vocab)
    meta = {"micro_batch_size": 3, "temperature": 0.7}
    log_probs, entropy = actor.compute_log_prob(DataProto(batch=data.batch, meta_info=meta), calculate_entropy=True)
    ref_log_probs, ref_entropy = _direct_log_probs(tiny_model_dir, data, 0.7)
    mask = data.batch["response_mask"].bool()
    assert log_probs.shape == entropy.shape == mask.shape
    torch.testing.assert_close(log_probs[mask], ref_log_probs[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy[mask], ref_entropy[mask], atol=1e-5, rtol=1e-5)


def test_update_changes_every_parameter_and_reports_verl_metrics(cpu_group, tiny_model_dir, tiny_vocab):
    cfg = actor_config(ppo_micro_batch_size_per_gpu=4, use_kl_loss=True)
    actor = sharded_actor(tiny_model_dir, cfg)
    data = with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab))
    data.batch["ref_log_prob"] = data.batch["old_log_probs"] - 0.1
    before = full_params(actor.actor_module)
    metrics = actor.update_policy(data)
    after = full_params(actor.actor_module)
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    for key in ("pg_loss", "pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "entropy_loss", "kl_loss", "kl_coef", "grad_norm"):
        values = metrics[f"actor/{key}"]
        assert len(values) == 1 and math.isfinite(values[0]), (key, values)
    assert metrics["actor/kl_loss"][0] > 0 and metrics["actor/kl_coef"][0] == pytest.approx(0.1)


DR_GRPO = {"loss_agg_mode": "seq-mean-token-sum-norm", "loss_scale_factor": 3.0}


@pytest.mark.parametrize(
    "variant",
    [
        {"ppo_micro_batch_size_per_gpu": 1},
        {"ppo_micro_batch_size_per_gpu": 2, "use_remove_padding": True},
        {"use_dynamic_bsz": True, "ppo_max_token_len_per_gpu": 30},
        {"ppo_micro_batch_size_per_gpu": 1, "loss_agg_mode": "seq-mean-token-mean", "__ref": {"loss_agg_mode": "seq-mean-token-mean"}},
        {"ppo_micro_batch_size_per_gpu": 3, **DR_GRPO, "__ref": DR_GRPO},
        {"use_dynamic_bsz": True, "ppo_max_token_len_per_gpu": 30, **DR_GRPO, "__ref": DR_GRPO},
    ],
    ids=["8x1", "remove_padding_4x2", "dynamic_bsz", "seq_mean_8x1", "dr_grpo_3_3_2", "dr_grpo_dynamic_bsz"],
)
def test_one_update_does_not_depend_on_micro_batching(cpu_group, tiny_model_dir, tiny_vocab, variant):
    """1 x 8 rows == 8 x 1 rows == packed / dynamic micro-batches: same parameters after the update (SGD, lr 1)."""
    variant = dict(variant)
    ref_overrides = variant.pop("__ref", {})
    updates = []
    for overrides in ({"ppo_micro_batch_size_per_gpu": 8, **ref_overrides}, variant):
        cfg = actor_config(use_kl_loss=True, **overrides)
        actor = sharded_actor(tiny_model_dir, cfg, optimizer="sgd")
        data = with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab, seed=3), noise=0.3)
        data.batch["ref_log_prob"] = data.batch["old_log_probs"] + 0.2
        metrics = actor.update_policy(data)
        updates.append((full_params(actor.actor_module), metrics))
    (ref_params, ref_metrics), (params, metrics) = updates
    assert 0 < ref_metrics["actor/pg_clipfrac"][0] < 1  # the clipped branch is exercised
    for name in ref_params:
        torch.testing.assert_close(params[name], ref_params[name], atol=1e-5, rtol=0, msg=name)
    for key in ("actor/pg_loss", "actor/entropy_loss", "actor/kl_loss", "actor/pg_clipfrac", "actor/grad_norm"):
        assert metrics[key][0] == pytest.approx(ref_metrics[key][0], abs=1e-5), key


def test_kl_loss_pulls_the_policy_towards_the_reference(cpu_group, tiny_model_dir, tiny_vocab):
    """With zero advantages only the KL term acts: it is added to the loss, so KL(policy, ref) must shrink."""
    cfg = actor_config(use_kl_loss=True, kl_loss_coef=1.0, entropy_coeff=0.0, kl_loss_type="low_var_kl")
    actor = sharded_actor(tiny_model_dir, cfg)
    data = with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab))
    data.batch["advantages"] = torch.zeros_like(data.batch["advantages"])
    data.batch["ref_log_prob"] = data.batch["old_log_probs"] - 1.0
    mask = data.batch["response_mask"]

    def kl_to_ref():
        log_probs, _ = actor.compute_log_prob(DataProto(batch=data.batch, meta_info={"micro_batch_size": 8, "temperature": 0.7}))
        kl = core_algos.kl_penalty(log_probs, data.batch["ref_log_prob"], "low_var_kl")
        return float((kl * mask).sum() / mask.sum())

    before = kl_to_ref()
    actor.update_policy(data)
    assert kl_to_ref() < before


def test_non_finite_gradient_skips_the_step(cpu_group, tiny_model_dir, tiny_vocab):
    actor = sharded_actor(tiny_model_dir)
    data = with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab))
    data.batch["advantages"][0, 0] = float("nan")
    before = full_params(actor.actor_module)
    with pytest.warns(UserWarning, match="skipping this optimizer step"):
        metrics = actor.update_policy(data)
    assert not math.isfinite(metrics["actor/grad_norm"][0])
    after = full_params(actor.actor_module)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_update_names_missing_keys(cpu_group, tiny_model_dir, tiny_vocab):
    actor = sharded_actor(tiny_model_dir, actor_config(use_kl_loss=True))
    data = with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab))
    with pytest.raises(KeyError, match="ref_log_prob"):
        actor.update_policy(data)


@pytest.mark.parametrize("variant", [{}, {"ppo_micro_batch_size_per_gpu": 2, "use_remove_padding": True}],
                         ids=["padded", "remove_padding_4x2"])
def test_on_policy_update_without_old_log_probs_equals_the_explicit_pass(cpu_group, tiny_model_dir, tiny_vocab,
                                                                         variant):
    """One optimizer step per batch: the update's own detached log-probs stand for the old policy's. Same
    parameters (SGD, lr 1, so gradients are compared at full scale), losses and entropy as with the separate
    old-log-prob pass; the KL loss to the reference acts alike."""
    results = []
    for explicit_pass in (True, False):
        cfg = actor_config(use_kl_loss=True, entropy_coeff=0.0, **variant)
        actor = sharded_actor(tiny_model_dir, cfg, optimizer="sgd")
        data = ppo_batch(vocab_size=tiny_vocab, seed=4)
        data.batch["ref_log_prob"] = torch.randn(data.batch["responses"].shape, generator=torch.Generator().manual_seed(5)) - 4
        if explicit_pass:
            data = with_old_log_probs(actor, data)
        results.append((actor.update_policy(data), full_params(actor.actor_module)))
    (explicit_metrics, explicit_params), (shortcut_metrics, shortcut_params) = results
    for name in explicit_params:
        torch.testing.assert_close(shortcut_params[name], explicit_params[name], atol=1e-6, rtol=0, msg=name)
    for key in ("actor/pg_loss", "actor/entropy_loss", "actor/kl_loss", "actor/grad_norm"):
        assert shortcut_metrics[key][0] == pytest.approx(explicit_metrics[key][0], abs=1e-6), key
    assert shortcut_metrics["actor/kl_loss"][0] > 0.1 and shortcut_metrics["actor/entropy_loss"][0] > 0.1
    # the shortcut's forward is the old-log-prob pass, so it reports the rollout policy's entropy (token mean: the
    # same as entropy_loss under token-mean); with a separate pass the trainer logs that pass's instead
    assert shortcut_metrics["actor/entropy"][0] == pytest.approx(explicit_metrics["actor/entropy_loss"][0], abs=1e-6)
    assert "actor/entropy" not in explicit_metrics
    assert shortcut_metrics["actor/pg_clipfrac"][0] == 0 and shortcut_metrics["actor/ppo_kl"][0] == 0


@pytest.mark.parametrize("overrides", [{"ppo_epochs": 2}, {"ppo_mini_batch_size": 4}], ids=["two_epochs", "two_minis"])
def test_update_without_old_log_probs_needs_a_single_step(cpu_group, tiny_model_dir, tiny_vocab, overrides):
    actor = sharded_actor(tiny_model_dir, actor_config(ppo_micro_batch_size_per_gpu=4, **overrides))
    with pytest.raises(KeyError, match="old_log_probs.*single optimizer step"):
        actor.update_policy(ppo_batch(vocab_size=tiny_vocab))


@pytest.mark.parametrize("use_remove_padding", [False, True])
def test_vocabulary_projection_sees_only_positions_before_response_tokens(cpu_group, tiny_model_dir, tiny_vocab,
                                                                          use_remove_padding):
    """lm_head runs on R rows per sequence (padded) or one row per real response token (packed), never on the
    prompt; the log-probs and their gradients equal a full-sequence forward's."""
    actor = sharded_actor(tiny_model_dir, use_remove_padding=use_remove_padding)
    data = ppo_batch(batch_size=4, prompt_len=9, vocab_size=tiny_vocab, seed=6)
    b = data.batch
    projected = []
    hook = actor.actor_module.get_output_embeddings().register_forward_hook(
        lambda module, args, out: projected.append(tuple(args[0].shape[:-1])))
    try:
        _, log_probs = actor._forward_micro_batch(b, temperature=0.7)
    finally:
        hook.remove()
    response_tokens = int(b["response_mask"].sum())
    assert projected == ([(1, response_tokens)] if use_remove_padding else [(4, 5)])

    mask = b["response_mask"].bool()
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(1)) * mask
    (log_probs * weights).sum().backward()
    sliced_grads = {n: p.grad.clone() for n, p in actor.actor_module.named_parameters()}
    actor.actor_module.zero_grad()
    logits = actor.actor_module(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                position_ids=b["position_ids"]).logits  # every position
    full = torch.log_softmax(logits[:, -6:-1].float() / 0.7, -1).gather(-1, b["responses"][..., None]).squeeze(-1)
    torch.testing.assert_close(log_probs[mask], full[mask], atol=1e-5, rtol=1e-5)
    (full * weights).sum().backward()
    for name, param in actor.actor_module.named_parameters():
        torch.testing.assert_close(sliced_grads[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


# ---------------------------------------------------------------------------------------------------------------------
# loss aggregation (Dr. GRPO) and policy losses (actor.policy_loss.loss_mode) through the actor
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [None, 3.0], ids=["response_length", "scale_3"])
def test_dr_grpo_loss_is_the_sequence_mean_of_token_sums_over_loss_scale_factor(cpu_group, tiny_model_dir, tiny_vocab,
                                                                               scale):
    """On-policy (ratio 1, the update's own log-probs) the policy loss is -sum_i sum_t A_it / G / loss_scale_factor
    (G = 8 sequences, default factor the response length 5), over micro-batches of 3, 3 and 2 rows; its gradient is
    seq-mean-token-sum's divided by the factor."""
    metrics = {}
    for mode in ("seq-mean-token-sum-norm", "seq-mean-token-sum"):
        cfg = actor_config(loss_agg_mode=mode, loss_scale_factor=scale, entropy_coeff=0.0,
                           ppo_micro_batch_size_per_gpu=3)
        actor = sharded_actor(tiny_model_dir, cfg, optimizer="sgd")
        metrics[mode] = actor.update_policy(ppo_batch(vocab_size=tiny_vocab, seed=7))
    batch = ppo_batch(vocab_size=tiny_vocab, seed=7).batch
    factor = 5 if scale is None else scale
    expected = -float((batch["advantages"] * batch["response_mask"]).sum()) / 8 / factor
    norm, plain = metrics["seq-mean-token-sum-norm"], metrics["seq-mean-token-sum"]
    assert norm["actor/pg_loss"][0] == pytest.approx(expected, rel=1e-5)
    assert norm["actor/grad_norm"][0] == pytest.approx(plain["actor/grad_norm"][0] / factor, rel=1e-5)


def test_gspo_through_the_actor_gives_each_sequence_one_ratio(cpu_group, tiny_model_dir, tiny_vocab):
    """policy_loss.loss_mode=gspo: with old log-probs shifted by one constant per sequence, every token's own ratio IS
    its sequence's, so GSPO updates exactly as vanilla PPO; with per-token noise it does not, and its loss is
    -mean_i(s_i * mean_t A_it), s_i = exp(mean_t(log_prob - old_log_prob)) (no clipping in this range)."""
    results = {}
    for loss_mode in ("vanilla", "gspo"):
        for noise_kind in ("per_sequence", "per_token"):
            cfg = actor_config(policy_loss={"loss_mode": loss_mode}, loss_agg_mode="seq-mean-token-mean",
                               clip_ratio=10.0, clip_ratio_c=100.0, entropy_coeff=0.0, ppo_micro_batch_size_per_gpu=4)
            actor = sharded_actor(tiny_model_dir, cfg, optimizer="sgd")
            data = ppo_batch(vocab_size=tiny_vocab, seed=8)
            meta = {"micro_batch_size": 8, "temperature": data.meta_info["temperature"]}
            log_probs, _ = actor.compute_log_prob(DataProto(batch=data.batch, meta_info=meta))
            g = torch.Generator().manual_seed(9)
            noise = 0.3 * (torch.randn(8, 1, generator=g).expand(8, 5) if noise_kind == "per_sequence"
                           else torch.randn(8, 5, generator=g))
            data.batch["old_log_probs"] = log_probs + noise
            metrics = actor.update_policy(data)
            results[loss_mode, noise_kind] = (metrics, full_params(actor.actor_module), log_probs, data.batch)
    for name, value in results["vanilla", "per_sequence"][1].items():
        torch.testing.assert_close(results["gspo", "per_sequence"][1][name], value, atol=1e-6, rtol=0, msg=name)
    vanilla_params, gspo_params = results["vanilla", "per_token"][1], results["gspo", "per_token"][1]
    assert max((gspo_params[n] - vanilla_params[n]).abs().max() for n in gspo_params) > 1e-4

    metrics, _, log_probs, batch = results["gspo", "per_token"]
    mask, adv = batch["response_mask"].double(), batch["advantages"].double()
    lengths = mask.sum(-1)
    seq_ratio = torch.exp(((log_probs.double() - batch["old_log_probs"].double()) * mask).sum(-1) / lengths)
    expected = -((adv * mask).sum(-1) / lengths * seq_ratio).mean()
    assert metrics["actor/pg_loss"][0] == pytest.approx(float(expected), rel=1e-5)


def test_unknown_policy_loss_names_the_registered_ones(cpu_group, tiny_model_dir, tiny_vocab):
    actor = sharded_actor(tiny_model_dir, actor_config(policy_loss={"loss_mode": "ppo2"}))
    with pytest.raises(ValueError, match=r"unknown policy loss 'ppo2'; valid: \['gspo', 'vanilla'\]"):
        actor.update_policy(with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab)))


TWO_RANK_VARIANTS = {
    "dr_grpo": {**DR_GRPO, "use_kl_loss": True},
    "gspo": {"policy_loss": {"loss_mode": "gspo"}, "loss_agg_mode": "seq-mean-token-mean", "clip_ratio": 0.1},
}


def _update_on_rank(model_dir: str, vocab: int, rank: int, world: int) -> dict:
    """Each variant's update on this rank's half (or all) of one global batch of 8 rows; the gradient is not clipped
    (grad_clip 1e9), so SGD with lr 1 moves the parameters by exactly the accumulated gradient."""
    out = {}
    for name, overrides in TWO_RANK_VARIANTS.items():
        cfg = actor_config(ppo_mini_batch_size=8 // world, ppo_micro_batch_size_per_gpu=3 if world == 1 else 2,
                           grad_clip=1e9, **overrides)
        actor = sharded_actor(model_dir, cfg, optimizer="sgd")
        data = with_old_log_probs(actor, ppo_batch(vocab_size=vocab, seed=3), noise=0.3)
        data.batch["ref_log_prob"] = data.batch["old_log_probs"] + 0.2
        metrics = actor.update_policy(data.chunk(world)[rank])
        out[name] = (full_params(actor.actor_module), metrics)
    return out


def _two_rank_main(rank: int, port: int, model_dir: str, vocab: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.save(_update_on_rank(model_dir, vocab, rank, 2), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_dr_grpo_and_gspo_updates_on_two_ranks_equal_one_rank(cpu_group, tiny_model_dir, tiny_vocab, tmp_path):
    """1 rank x micro-batches of 3, 3, 2 rows == 2 ranks x 2 x 2 rows: the same parameters and losses for Dr. GRPO
    (seq-mean-token-sum-norm, loss_scale_factor 3, KL loss and entropy aggregated alike) and GSPO."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_two_rank_main, args=(port, tiny_model_dir, tiny_vocab, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    single = _update_on_rank(tiny_model_dir, tiny_vocab, 0, 1)
    for variant, (params, metrics) in single.items():
        for name, value in params.items():
            torch.testing.assert_close(ranks[0][variant][0][name], value, atol=1e-6, rtol=0, msg=f"{variant}: {name}")
        for key in ("actor/pg_loss", "actor/kl_loss", "actor/grad_norm"):
            assert ranks[0][variant][1][key][0] == pytest.approx(metrics[key][0], rel=1e-5, abs=1e-7), (variant, key)
    assert single["dr_grpo"][1]["actor/kl_loss"][0] > 0
