import math
import statistics
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from verl.trainer.ppo import core_algos
from verl.trainer.ppo.core_algos import (
    AdaptiveKLController,
    AdvantageEstimator,
    FixedKLController,
    agg_loss,
    compute_entropy_loss,
    compute_gae_advantage_return,
    compute_grpo_outcome_advantage,
    compute_policy_loss,
    compute_policy_loss_gspo,
    compute_policy_loss_vanilla,
    compute_reinforce_plus_plus_baseline_outcome_advantage,
    compute_reinforce_plus_plus_outcome_advantage,
    compute_remax_outcome_advantage,
    compute_rewards,
    compute_rloo_outcome_advantage,
    compute_value_loss,
    get_adv_estimator_fn,
    get_kl_controller,
    get_policy_loss_fn,
    kl_penalty,
    register_adv_est,
    register_policy_loss,
)

T = torch.tensor


def outcome_rewards(scores, lengths, width):
    """Token-level rewards [B, width] with each score on the last token of its response, and the mask."""
    rewards = torch.zeros(len(scores), width, dtype=torch.float64)
    mask = torch.zeros(len(scores), width, dtype=torch.float64)
    for i, (score, n) in enumerate(zip(scores, lengths)):
        mask[i, :n] = 1
        rewards[i, n - 1] = score
    return rewards, mask


# ---------------------------------------------------------------------------------------------
# GAE
# ---------------------------------------------------------------------------------------------
def test_gae_by_hand_with_padding():
    rewards, values, mask = T([[1.0, 0.0, 2.0]]), T([[1.0, 2.0, 3.0]]), T([[1.0, 1.0, 0.0]])
    adv, ret = compute_gae_advantage_return(rewards, values, mask, gamma=0.5, lam=0.5)
    # delta_1 = 0 - 2 = -2 -> A_1 = -2;  delta_0 = 1 + 0.5 * 2 - 1 = 1 -> A_0 = 1 + 0.25 * (-2) = 0.5
    assert ret[0, :2].tolist() == pytest.approx([1.5, 0.0])
    mean, std = -0.75, math.sqrt(2 * 1.25**2)  # whitening over the two unmasked tokens
    assert adv[0, :2].tolist() == pytest.approx([(0.5 - mean) / std, (-2 - mean) / std], abs=1e-6)


def v04_gae(rewards, values, gamma, lam):
    """verl v0.4's recursion (values already zeroed on padding), written out plainly."""
    B, L = rewards.shape
    adv = torch.zeros_like(rewards)
    for b in range(B):
        last = 0.0
        for t in reversed(range(L)):
            next_value = values[b, t + 1] if t + 1 < L else 0.0
            last = rewards[b, t] + gamma * next_value - values[b, t] + gamma * lam * last
            adv[b, t] = last
    return adv, adv + values


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
    gamma=st.floats(0.5, 1.0),
    lam=st.floats(0.5, 1.0),
)
def test_gae_matches_verl_v04_on_the_mask_and_unit_gamma_lam_gives_reward_to_go(lengths, seed, gamma, lam):
    assume(sum(lengths) >= 2)  # whitening needs two tokens (an unbiased variance), in verl as here
    gen = torch.Generator().manual_seed(seed)
    B, L = len(lengths), 6
    mask = torch.zeros(B, L, dtype=torch.float64)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    rewards = torch.randn(B, L, generator=gen, dtype=torch.float64) * mask
    values = torch.randn(B, L, generator=gen, dtype=torch.float64)

    # garbage values on padding must not matter
    _, ret = compute_gae_advantage_return(rewards, values, mask, gamma, lam)
    _, ref_ret = v04_gae(rewards, values * mask, gamma, lam)
    torch.testing.assert_close(ret * mask, ref_ret * mask)

    _, ret1 = compute_gae_advantage_return(rewards, values, mask, 1.0, 1.0)
    reward_to_go = rewards.flip(-1).cumsum(-1).flip(-1)
    torch.testing.assert_close(ret1 * mask, reward_to_go * mask)


# ---------------------------------------------------------------------------------------------
# outcome estimators
# ---------------------------------------------------------------------------------------------
def test_grpo_by_hand():
    rewards, mask = outcome_rewards([1.0, 0.0, 0.5, 2.0, 3.0], [2, 3, 1, 2, 3], 3)
    index = np.array(["a", "a", "b", "b", "c"], dtype=object)
    adv, ret = compute_grpo_outcome_advantage(rewards, mask, index)
    eps = 1e-6
    std_a, std_b = math.sqrt(0.5), math.sqrt(2 * 0.75**2)
    expected = [0.5 / (std_a + eps), -0.5 / (std_a + eps), -0.75 / (std_b + eps), 0.75 / (std_b + eps), 3 / (1 + eps)]
    assert adv[:, 0].tolist() == pytest.approx(expected, rel=1e-9)
    assert torch.equal(adv, ret)
    assert adv[mask == 0].abs().max() == 0  # zero outside the mask
    plain, _ = compute_grpo_outcome_advantage(rewards, mask, index, norm_adv_by_std_in_grpo=False)
    assert plain[:, 0].tolist() == pytest.approx([0.5, -0.5, -0.75, 0.75, 3.0])


@settings(max_examples=30, deadline=None)
@given(group_sizes=st.lists(st.integers(2, 5), min_size=1, max_size=4), seed=st.integers(0, 10_000))
def test_grpo_advantages_sum_to_zero_in_each_group(group_sizes, seed):
    rng = np.random.default_rng(seed)
    index = np.array([f"g{g}" for g, n in enumerate(group_sizes) for _ in range(n)], dtype=object)
    rng.shuffle(index)
    scores = rng.integers(0, 3, size=len(index)).astype(float)  # ties are common in real rewards
    rewards, mask = outcome_rewards(scores, [2] * len(index), 2)
    for norm in (True, False):
        adv, _ = compute_grpo_outcome_advantage(rewards, mask, index, norm_adv_by_std_in_grpo=norm)
        for g in set(index):
            assert adv[index == g, 0].sum().item() == pytest.approx(0.0, abs=1e-9)


def test_group_index_may_be_a_tensor_or_ints():
    rewards, mask = outcome_rewards([1.0, 3.0], [1, 1], 1)
    by_tensor, _ = compute_grpo_outcome_advantage(rewards, mask, torch.tensor([7, 7]), norm_adv_by_std_in_grpo=False)
    assert by_tensor[:, 0].tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="index has 1 entries"):
        compute_grpo_outcome_advantage(rewards, mask, np.array([0]))


def test_rloo_by_hand():
    rewards, mask = outcome_rewards([1.0, 2.0, 6.0, 5.0], [1, 2, 2, 1], 2)
    adv, _ = compute_rloo_outcome_advantage(rewards, mask, np.array([0, 0, 0, 1]))
    # score minus the mean of the others: 1 - 4, 2 - 3.5, 6 - 1.5; a group of one keeps its score
    assert adv[:, 0].tolist() == pytest.approx([-3.0, -1.5, 4.5, 5.0])
    assert adv[0, 1].item() == 0.0 and adv[1, 1].item() == pytest.approx(-1.5)


def test_reinforce_plus_plus_by_hand():
    rewards = T([[0.0, 0.0, 1.0], [0.0, 2.0, 9.0]])
    mask = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = compute_reinforce_plus_plus_outcome_advantage(rewards, mask, gamma=0.5)
    # the 9.0 sits on padding: the return restarts there and never reaches the response
    assert (ret * mask).flatten().tolist() == pytest.approx([0.25, 0.5, 1.0, 1.0, 2.0, 0.0])
    on_mask = [0.25, 0.5, 1.0, 1.0, 2.0]
    mean, std = statistics.mean(on_mask), statistics.stdev(on_mask)
    expected = [[(x - mean) / std for x in (0.25, 0.5, 1.0)], [(1.0 - mean) / std, (2.0 - mean) / std, 0.0]]
    assert adv.tolist() == [pytest.approx(row, abs=1e-5) for row in expected]


def test_reinforce_plus_plus_baseline_by_hand():
    rewards, mask = outcome_rewards([1.0, 3.0, 4.0], [1, 2, 1], 2)
    adv, _ = compute_reinforce_plus_plus_baseline_outcome_advantage(rewards, mask, np.array(["a", "a", "b"]))
    on_mask = [-1.0, 1.0, 1.0, 4.0]  # a: 1 - 2, 3 - 2 (two tokens); b alone: baseline 0
    mean, std = statistics.mean(on_mask), statistics.stdev(on_mask)
    assert adv.tolist() == [
        pytest.approx([(-1 - mean) / std, 0.0], abs=1e-6),
        pytest.approx([(1 - mean) / std] * 2, abs=1e-6),
        pytest.approx([(4 - mean) / std, 0.0], abs=1e-6),
    ]


def test_remax_by_hand():
    adv, ret = compute_remax_outcome_advantage(T([[0.0, 1.0, 5.0]]), T([0.25]), T([[1.0, 1.0, 0.0]]))
    assert ret.tolist() == [[1.0, 1.0, 0.0]] and adv[0].tolist() == pytest.approx([0.75, 0.75, 0.0])


def test_compute_rewards_subtracts_k1_kl():
    out = compute_rewards(T([[1.0, 0.0]]), T([[-1.0, -2.0]]), T([[-1.5, -1.0]]), kl_ratio=0.1)
    assert out[0].tolist() == pytest.approx([1.0 - 0.05, 0.0 + 0.1])


# ---------------------------------------------------------------------------------------------
# registry and controllers
# ---------------------------------------------------------------------------------------------
def test_registry_knows_every_builtin_and_calls_them_uniformly():
    rewards, mask = outcome_rewards([1.0, 0.0, 2.0, 1.0], [2, 2, 1, 2], 2)
    kwargs = dict(token_level_rewards=rewards, response_mask=mask, index=np.array([0, 0, 1, 1]),
                  values=torch.zeros_like(rewards), reward_baselines=torch.zeros(4), gamma=1.0, lam=1.0)
    for est in AdvantageEstimator:
        adv, ret = get_adv_estimator_fn(est)(**kwargs)
        assert adv.shape == ret.shape == rewards.shape, est
    assert get_adv_estimator_fn("grpo") is compute_grpo_outcome_advantage
    with pytest.raises(ValueError, match=r"'nope'.*'gae'.*'grpo'"):
        get_adv_estimator_fn("nope")


def test_register_adv_est_adds_custom_and_refuses_a_clash(monkeypatch):
    monkeypatch.setattr(core_algos, "ADV_ESTIMATOR_REGISTRY", core_algos.ADV_ESTIMATOR_REGISTRY.copy())

    @register_adv_est("my_est")
    def my_est(token_level_rewards, response_mask, **kwargs):
        return token_level_rewards, token_level_rewards

    assert get_adv_estimator_fn("my_est") is my_est
    with pytest.raises(ValueError, match="already registered"):
        register_adv_est("grpo")(my_est)


def test_kl_controllers_by_hand():
    fixed = FixedKLController(0.2)
    fixed.update(current_kl=5.0, n_steps=100)
    assert fixed.value == 0.2
    adaptive = AdaptiveKLController(init_kl_coef=0.1, target_kl=1.0, horizon=10)
    adaptive.update(current_kl=2.0, n_steps=5)  # error clipped to +0.2: x (1 + 0.2 * 5 / 10)
    assert adaptive.value == pytest.approx(0.11)
    adaptive.update(current_kl=0.9, n_steps=10)  # error -0.1: x 0.9
    assert adaptive.value == pytest.approx(0.099)
    cfg = SimpleNamespace(type="adaptive", kl_coef=0.1, target_kl=1.0, horizon=10)
    assert isinstance(get_kl_controller(cfg), AdaptiveKLController)
    with pytest.raises(ValueError, match="'pid'"):
        get_kl_controller(SimpleNamespace(type="pid", kl_coef=0.1))


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def test_agg_loss_modes_by_hand():
    loss, mask = T([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]]), T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert agg_loss(loss, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert agg_loss(loss, mask, "token-sum").item() == pytest.approx(10)
    assert agg_loss(loss, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert agg_loss(loss, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    # Dr. GRPO: the sequence mean of token sums over a constant, the response length 3 unless given
    assert agg_loss(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx((6 + 4) / 2 / 3)
    assert agg_loss(loss, mask, "seq-mean-token-sum-norm", loss_scale_factor=5).item() == pytest.approx((6 + 4) / 2 / 5)
    # global counts: 2 of 8 sequences / 4 of 16 tokens of a mini-batch over 2 ranks
    assert agg_loss(loss, mask, "seq-mean-token-sum-norm", dp_size=2, global_batch_size=8).item() == pytest.approx(
        (6 + 4) / 8 / 3 * 2)
    assert agg_loss(loss, mask, "token-mean", dp_size=2, batch_num_tokens=16).item() == pytest.approx(10 / 16 * 2)
    assert agg_loss(loss, mask, "token-sum", dp_size=2).item() == pytest.approx(10 * 2)
    with pytest.raises(ValueError, match=r"'token-max'.*'token-mean'"):
        agg_loss(loss, mask, "token-max")
    with pytest.raises(ValueError, match="loss_scale_factor must be > 0"):
        agg_loss(loss, mask, "seq-mean-token-sum-norm", loss_scale_factor=0)


@pytest.mark.parametrize("mode,needs", [("token-mean", "batch_num_tokens"),
                                        ("seq-mean-token-sum-norm", "global_batch_size")])
def test_agg_loss_on_several_ranks_needs_the_global_count(mode, needs):
    with pytest.raises(ValueError, match=f"loss_agg_mode='{mode}' with dp_size=2 needs the global {needs}"):
        agg_loss(torch.ones(2, 3), torch.ones(2, 3), mode, dp_size=2)


def mini_batch_loss_formula(loss, mask, mode, scale=None):
    """Each aggregation mode written out on the whole mini-batch (python loops over rows; empty rows left out)."""
    rows = [(loss[i][mask[i] > 0].tolist()) for i in range(loss.shape[0])]
    tokens = [x for row in rows for x in row]
    seqs = [row for row in rows if row]
    if mode == "token-mean":
        return sum(tokens) / len(tokens)
    if mode == "token-sum":
        return sum(tokens)
    if mode == "seq-mean-token-sum":
        return sum(sum(row) for row in seqs) / len(seqs)
    if mode == "seq-mean-token-mean":
        return sum(sum(row) / len(row) for row in seqs) / len(seqs)
    assert mode == "seq-mean-token-sum-norm"
    return sum(sum(row) for row in seqs) / len(seqs) / (loss.shape[1] if scale is None else scale)


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(core_algos.LOSS_AGG_MODES),
    micro=st.sampled_from([1, 2, 4, 8]),
    dp=st.sampled_from([1, 2]),
    scale=st.sampled_from([None, 2.5]),
    seed=st.integers(0, 1000),
)
def test_agg_loss_with_global_counts_sums_to_the_mini_batch_formula(mode, micro, dp, scale, seed):
    """Micro-batch losses (global counts, times dp_size) summed over micro-batches and averaged over ranks (as
    DP averages gradients) equal the mini-batch loss written out, for any micro-batch size and rank count."""
    gen = torch.Generator().manual_seed(seed)
    loss = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    mask = (torch.rand(8, 5, generator=gen) > 0.3).double()
    mask[seed % 8] = 0  # an empty row: no token, not counted as a sequence
    mask[(seed + 1) % 8, 0] = 1
    n_tokens, n_seqs = mask.sum(), (mask.sum(-1) > 0).sum()
    per_rank = 8 // dp
    total = 0.0
    for rank in range(dp):
        for start in range(rank * per_rank, (rank + 1) * per_rank, min(micro, per_rank)):
            sl = slice(start, start + min(micro, per_rank))
            total = total + agg_loss(loss[sl], mask[sl], mode, dp_size=dp, batch_num_tokens=n_tokens,
                                     global_batch_size=n_seqs, loss_scale_factor=scale)
    assert (total / dp).item() == pytest.approx(mini_batch_loss_formula(loss, mask, mode, scale), rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("mode", ["seq-mean-token-sum-norm", "seq-mean-token-sum", "seq-mean-token-mean", "token-mean"])
def test_mean_modes_do_not_grow_with_the_batch_size(mode):
    """Dr. GRPO divides by a constant instead of each sequence's length, but still averages over sequences: the
    same sequences twice give the same loss (verl <= 0.8 summed over sequences: twice the loss and gradient)."""
    loss = T([[1.0, 2.0, 3.0, 0.0], [4.0, 9.0, 9.0, 9.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    once = agg_loss(loss, mask, mode)
    twice = agg_loss(torch.cat([loss, loss]), torch.cat([mask, mask]), mode)
    assert twice.item() == pytest.approx(once.item()) == pytest.approx(mini_batch_loss_formula(loss, mask, mode))


def test_policy_loss_by_hand_with_clip_and_dual_clip():
    old = torch.zeros(1, 4)
    new = torch.log(T([[1.5, 0.5, 1.0, 5.0]]))
    adv = T([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    pg_loss, clipfrac, ppo_kl, clipfrac_lower = compute_policy_loss(old, new, adv, mask, cliprange=0.2)
    # per token: max(-1.5, -1.2) = -1.2 (clipped); max(-0.5, -0.8) = -0.5; 1; min(3, max(5, 1.2)) = 3 (dual clip)
    assert pg_loss.item() == pytest.approx((-1.2 - 0.5 + 1.0 + 3.0) / 4)
    assert clipfrac.item() == pytest.approx(0.25) and clipfrac_lower.item() == pytest.approx(0.25)
    assert ppo_kl.item() == pytest.approx(-(math.log(1.5) + math.log(0.5) + math.log(5.0)) / 4)
    # asymmetric clip (DAPO clip-higher): the first token is clipped at 1.28 instead of 1.2
    asym, *_ = compute_policy_loss(old, new, adv, mask, cliprange=0.2, cliprange_low=0.2, cliprange_high=0.28)
    assert asym.item() == pytest.approx((-1.28 - 0.5 + 1.0 + 3.0) / 4)


def test_policy_loss_clamps_the_log_ratio_and_checks_arguments():
    pg_loss, _, ppo_kl, _ = compute_policy_loss(torch.zeros(1, 1), T([[100.0]]), T([[-1.0]]), torch.ones(1, 1), 0.2)
    assert torch.isfinite(pg_loss) and pg_loss.item() == pytest.approx(3.0)  # dual clip bound -A * 3
    assert ppo_kl.item() == pytest.approx(-20.0)
    with pytest.raises(ValueError, match="clip_ratio_c"):
        compute_policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), 0.2, clip_ratio_c=1.0)
    with pytest.raises(ValueError, match="cliprange"):
        compute_policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1))


def agg_weights(mask, mode, scale=None):
    """d(mini-batch loss) / d(per-token loss) [B, T] for each aggregation mode, written out."""
    n_tokens, n_seqs, seq_len = mask.sum(), (mask.sum(-1) > 0).sum(), mask.sum(-1, keepdim=True)
    per_seq = {"token-mean": 1 / n_tokens, "token-sum": torch.tensor(1.0), "seq-mean-token-sum": 1 / n_seqs,
               "seq-mean-token-mean": 1 / (n_seqs * seq_len.clamp(min=1)),
               "seq-mean-token-sum-norm": 1 / (n_seqs * (mask.shape[-1] if scale is None else scale))}[mode]
    return per_seq * mask


@pytest.mark.parametrize("loss_mode", ["vanilla", "gspo"])
@pytest.mark.parametrize("mode", core_algos.LOSS_AGG_MODES)
@pytest.mark.parametrize("micro,dp", [(8, 1), (1, 1), (3, 1), (2, 2), (4, 2)])
def test_policy_loss_gradient_over_micro_batches_and_ranks_is_the_formulas(loss_mode, mode, micro, dp):
    """Within the clip range, d loss / d log_prob_t = -A_t * ratio_t * w_t, with ratio_t the token's ratio (vanilla) or
    its sequence's length-normalised ratio (gspo) and w_t the aggregation weight; accumulated over micro-batches
    (global counts, dp_size) and averaged over ranks, the gradient is that for any split."""
    torch.manual_seed(0)
    old, adv = torch.randn(8, 6, dtype=torch.float64) * 0.1, torch.randn(8, 6, dtype=torch.float64)
    mask = (torch.rand(8, 6) > 0.3).double()
    mask[5] = 0
    new = old + torch.randn(8, 6, dtype=torch.float64) * 0.3
    info = {"dp_size": dp, "batch_num_tokens": float(mask.sum()), "global_batch_size": float((mask.sum(-1) > 0).sum()),
            "loss_scale_factor": 4.0}
    config = {"clip_ratio": 10.0, "clip_ratio_c": 100.0, "global_batch_info": info}  # nothing is clipped
    log_prob = new.clone().requires_grad_(True)
    per_rank = 8 // dp
    for rank in range(dp):
        for start in range(rank * per_rank, (rank + 1) * per_rank, micro):
            sl = slice(start, min(start + micro, (rank + 1) * per_rank))
            loss, _ = get_policy_loss_fn(loss_mode)(old[sl], log_prob[sl], adv[sl], mask[sl], mode, config)
            (loss / dp).backward()  # data parallelism averages the ranks' gradients
    if loss_mode == "vanilla":
        ratio = torch.exp(new - old)
    else:
        seq_log_ratio = ((new - old) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
        ratio = torch.exp(seq_log_ratio).expand_as(new)
    expected = -adv * ratio * agg_weights(mask, mode, scale=4.0)
    torch.testing.assert_close(log_prob.grad, expected, rtol=1e-7, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# policy-loss registry, vanilla through the config, GSPO
# ---------------------------------------------------------------------------------------------
def test_policy_loss_registry_knows_verls_names_and_refuses_unknown_and_clashing_ones(monkeypatch):
    assert get_policy_loss_fn("vanilla") is compute_policy_loss_vanilla
    assert get_policy_loss_fn("gspo") is compute_policy_loss_gspo
    with pytest.raises(ValueError, match=r"unknown policy loss 'ppo2'; valid: \['gspo', 'vanilla'\]"):
        get_policy_loss_fn("ppo2")
    monkeypatch.setattr(core_algos, "POLICY_LOSS_REGISTRY", core_algos.POLICY_LOSS_REGISTRY.copy())

    @register_policy_loss("mine")
    def mine(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean", config=None,
             rollout_is_weights=None):
        return agg_loss(-log_prob * advantages, response_mask, loss_agg_mode, **config["global_batch_info"]), {}

    assert get_policy_loss_fn("mine") is mine
    with pytest.raises(ValueError, match="'vanilla' is already registered"):
        register_policy_loss("vanilla")(mine)


def test_vanilla_reads_clips_and_global_counts_from_the_config():
    old, new = torch.zeros(1, 4), torch.log(T([[1.5, 0.5, 1.0, 5.0]]))
    adv, mask = T([[1.0, 1.0, -1.0, -1.0]]), torch.ones(1, 4)
    loss, metrics = compute_policy_loss_vanilla(old, new, adv, mask, config={"clip_ratio": 0.2})
    # the same tokens as test_policy_loss_by_hand_with_clip_and_dual_clip
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.0 + 3.0) / 4)
    assert metrics == pytest.approx({"actor/pg_clipfrac": 0.25, "actor/pg_clipfrac_lower": 0.25,
                                     "actor/ppo_kl": -(math.log(1.5) + math.log(0.5) + math.log(5.0)) / 4})
    # clip-higher 0.28, dual clip at 4 (caps the last token's 5), a mini-batch of 16 tokens over 2 ranks
    config = {"clip_ratio": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 4.0,
              "global_batch_info": {"dp_size": 2, "batch_num_tokens": 16}}
    loss, _ = compute_policy_loss_vanilla(old, new, adv, mask, config=config)
    assert loss.item() == pytest.approx((-1.28 - 0.5 + 1.0 + 4.0) / 16 * 2)
    with pytest.raises(ValueError, match="needs the actor config"):
        compute_policy_loss_vanilla(old, new, adv, mask)


GSPO_OLD = torch.zeros(2, 3, dtype=torch.float64)
GSPO_NEW = T([[0.3, -0.3, 0.6], [0.1, -0.5, 9.0]], dtype=torch.float64)  # 9.0 sits on padding: ignored
GSPO_ADV = T([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]], dtype=torch.float64)
GSPO_MASK = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
S0 = 1.2214027581601699  # exp((0.3 - 0.3 + 0.6) / 3): row 0's length-normalised sequence ratio
S1 = 0.8187307530779818  # exp((0.1 - 0.5) / 2)


def test_gspo_by_hand():
    """GSPO (arXiv 2507.18071) with clip range [0.9, 1.3]: every token of a sequence carries its sequence's ratio;
    row 0 (A = +1, s = 1.2214) is inside the range, row 1 (A = -1, s = 0.8187 < 0.9) is clipped at 0.9."""
    log_prob = GSPO_NEW.clone().requires_grad_(True)
    config = {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3}
    loss, metrics = compute_policy_loss_gspo(GSPO_OLD, log_prob, GSPO_ADV, GSPO_MASK, "seq-mean-token-mean", config)
    # per token: row 0 -> -1 * S0 each, row 1 -> max(S1, 0.9) = 0.9 each; mean per sequence, then over the 2
    # (seq-mean-token-mean divides each token sum by its length + 1e-8, as verl: hence rel=1e-8)
    assert loss.item() == pytest.approx((-S0 + 0.9) / 2, rel=1e-8)
    assert loss.item() == pytest.approx(-0.16070137908008495, rel=1e-8)
    loss.backward()
    # d/d log_prob_t of S0 * pi_t / sg[pi_t] is S0: row 0 tokens get -(1/2)(1/3) * S0; clipped row 1 gets nothing
    assert log_prob.grad.tolist() == [pytest.approx([-S0 / 6] * 3, rel=1e-8), [0.0, 0.0, 0.0]]
    assert metrics == pytest.approx({"actor/pg_clipfrac": 2 / 5, "actor/ppo_kl": -(0.3 - 0.3 + 0.6 + 0.1 - 0.5) / 5,
                                     "actor/pg_clipfrac_lower": 0.0})
    token_mean, _ = compute_policy_loss_gspo(GSPO_OLD, GSPO_NEW, GSPO_ADV, GSPO_MASK, "token-mean", config)
    assert token_mean.item() == pytest.approx((3 * -S0 + 2 * 0.9) / 5, rel=1e-12)
    # the paper's ranges (3e-4 / 4e-4) clip both rows: constant loss, no gradient
    tight, _ = compute_policy_loss_gspo(GSPO_OLD, GSPO_NEW, GSPO_ADV, GSPO_MASK, "seq-mean-token-mean",
                                        {"clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4})
    assert tight.item() == pytest.approx((-(1 + 4e-4) + (1 - 3e-4)) / 2, abs=1e-8)


def test_gspo_caps_the_log_ratio_at_10():
    loss, _ = compute_policy_loss_gspo(torch.zeros(1, 2), T([[20.0, 20.0]]), T([[-1.0, -1.0]]), torch.ones(1, 2),
                                       config={"clip_ratio": 0.2})
    assert loss.item() == pytest.approx(math.exp(10.0), rel=1e-6)


def test_value_loss_by_hand():
    vpreds, values = T([[2.0, 0.0, 1.2]]), T([[1.0, 1.0, 1.0]])
    returns, mask = T([[3.0, 0.0, 1.0]]), torch.ones(1, 3)
    vf_loss, vf_clipfrac = compute_value_loss(vpreds, returns, values, mask, cliprange_value=0.5)
    # clipped preds 1.5, 0.5, 1.2 -> max((2-3)^2, (1.5-3)^2) = 2.25, max(0, 0.25) = 0.25, 0.04
    assert vf_loss.item() == pytest.approx(0.5 * (2.25 + 0.25 + 0.04) / 3)
    assert vf_clipfrac.item() == pytest.approx(2 / 3)


def test_entropy_loss_by_hand():
    logits = torch.zeros(2, 3, 4)
    logits[1, :, 0] = 100.0  # a certain distribution: entropy 0
    mask = T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert compute_entropy_loss(logits, mask).item() == pytest.approx(3 * math.log(4) / 4, abs=1e-6)
    seq_mean = compute_entropy_loss(logits, mask, loss_agg_mode="seq-mean-token-mean")
    assert seq_mean.item() == pytest.approx(math.log(4) / 2, abs=1e-6)


def test_kl_penalty_by_hand():
    logp, ref = T([math.log(0.5)]), T([math.log(0.25)])
    ln2 = math.log(2)
    assert kl_penalty(logp, ref, "kl").item() == pytest.approx(ln2)
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(ln2)
    assert kl_penalty(ref, logp, "abs").item() == pytest.approx(ln2)
    assert kl_penalty(logp, ref, "mse").item() == pytest.approx(0.5 * ln2**2)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * ln2**2)
    # k3 = exp(ref - logp) - (ref - logp) - 1 = 0.5 + ln 2 - 1
    assert kl_penalty(logp, ref, "low_var_kl").item() == pytest.approx(0.5 + ln2 - 1)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 + ln2 - 1)
    assert kl_penalty(T([0.0, -100.0]), T([-100.0, 0.0]), "k3").tolist() == [10.0, 10.0]  # clamped both ways
    with pytest.raises(ValueError, match=r"'full'.*'low_var_kl'"):
        kl_penalty(logp, ref, "full")


@settings(max_examples=30, deadline=None)
@given(st.floats(-30, 0), st.floats(-30, 0))
def test_low_var_kl_is_never_negative(logp, ref):
    assert kl_penalty(T([logp]), T([ref]), "low_var_kl").item() >= 0.0
