"""PPO / GRPO building blocks: advantage estimators, losses, KL penalties and controllers.

Pure functions on tensors. Names, positional argument order and numerics follow verl's
``verl/trainer/ppo/core_algos.py`` (advantages as v0.3/v0.4; ``agg_loss`` and the policy-loss
registry as PyPI verl 0.9.1, which tests/verl/trainer/ppo/test_core_algos_parity.py checks), so code
written against verl runs unchanged. Shapes: B = batch, T = response length; masks hold 0/1.

Registered advantage estimators accept keyword arguments and ignore the ones they do not use, so
a trainer can call any of them the same way::

    fn = get_adv_estimator_fn(config.algorithm.adv_estimator)
    advantages, returns = fn(token_level_rewards=r, response_mask=m, index=uid, values=v,
                             reward_baselines=b, gamma=1.0, lam=1.0)
"""
from __future__ import annotations

from enum import Enum
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

import verl.utils.torch_functional as verl_F
from verl.utils.registry import NameRegistry

__all__ = [
    "AdvantageEstimator",
    "register_adv_est",
    "get_adv_estimator_fn",
    "compute_gae_advantage_return",
    "compute_grpo_outcome_advantage",
    "compute_rloo_outcome_advantage",
    "compute_reinforce_plus_plus_outcome_advantage",
    "compute_reinforce_plus_plus_baseline_outcome_advantage",
    "compute_remax_outcome_advantage",
    "compute_rewards",
    "agg_loss",
    "register_policy_loss",
    "get_policy_loss_fn",
    "compute_policy_loss",
    "compute_policy_loss_vanilla",
    "compute_policy_loss_gspo",
    "compute_value_loss",
    "compute_entropy_loss",
    "kl_penalty",
    "FixedKLController",
    "AdaptiveKLController",
    "get_kl_controller",
    "LOSS_AGG_MODES",
    "KL_PENALTY_MODES",
]


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------
class AdvantageEstimator(str, Enum):
    """The built-in estimator names (``algorithm.adv_estimator``)."""

    GAE = "gae"
    GRPO = "grpo"
    REINFORCE_PLUS_PLUS = "reinforce_plus_plus"
    REINFORCE_PLUS_PLUS_BASELINE = "reinforce_plus_plus_baseline"
    REMAX = "remax"
    RLOO = "rloo"


ADV_ESTIMATOR_REGISTRY = NameRegistry("advantage estimator")


def _name(name_or_enum: Union[str, Enum]) -> str:
    return name_or_enum.value if isinstance(name_or_enum, Enum) else name_or_enum


def register_adv_est(name_or_enum: Union[str, AdvantageEstimator]) -> Callable[[Callable], Callable]:
    """Decorator: register an advantage estimator under a name (a different function may not reuse it)."""
    return ADV_ESTIMATOR_REGISTRY.register(_name(name_or_enum))


def get_adv_estimator_fn(name_or_enum: Union[str, AdvantageEstimator]) -> Callable:
    """The estimator registered under ``name``; ValueError listing the valid names otherwise."""
    return ADV_ESTIMATOR_REGISTRY.lookup(_name(name_or_enum))


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, arXiv:1909.08593).

    ``update`` moves ``value`` by a factor 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon.
    """

    def __init__(self, init_kl_coef: float, target_kl: float, horizon: int):
        if horizon <= 0:
            raise ValueError(f"AdaptiveKLController: horizon must be > 0, got {horizon}")
        self.value = init_kl_coef
        self.target = target_kl
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = np.clip(current_kl / self.target - 1, -0.2, 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon


class FixedKLController:
    """A constant KL coefficient; ``update`` does nothing."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


def get_kl_controller(kl_ctrl) -> Union[FixedKLController, AdaptiveKLController]:
    """Build a controller from ``algorithm.kl_ctrl`` (``type``: fixed | adaptive, ``kl_coef``, ``horizon``, ``target_kl``)."""
    if kl_ctrl.type == "fixed":
        return FixedKLController(kl_coef=kl_ctrl.kl_coef)
    if kl_ctrl.type == "adaptive":
        return AdaptiveKLController(init_kl_coef=kl_ctrl.kl_coef, target_kl=kl_ctrl.target_kl, horizon=kl_ctrl.horizon)
    raise ValueError(f"unknown kl_ctrl.type {kl_ctrl.type!r}; valid: 'fixed', 'adaptive'")


# ----------------------------------------------------------------------------------------------
# advantage estimators
# ----------------------------------------------------------------------------------------------
@register_adv_est(AdvantageEstimator.GAE)
def compute_gae_advantage_return(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float,
    lam: float,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (arXiv:1506.02438). All inputs [B, T] -> (advantages, returns) [B, T].

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  returns = A + V.
    Masked positions are skipped: the recursion carries V and A across them, so padding (or
    observation tokens inside a response) never leaks into the result. Advantages are then
    whitened over the mask.
    """
    with torch.no_grad():
        next_values = torch.zeros_like(values[:, 0])
        last_gae = torch.zeros_like(values[:, 0])
        advantages_reversed = []
        for t in reversed(range(token_level_rewards.shape[-1])):
            mask_t = response_mask[:, t].to(values.dtype)
            delta = token_level_rewards[:, t] + gamma * next_values - values[:, t]
            gae = delta + gamma * lam * last_gae
            next_values = values[:, t] * mask_t + (1 - mask_t) * next_values
            last_gae = gae * mask_t + (1 - mask_t) * last_gae
            advantages_reversed.append(last_gae)
        advantages = torch.stack(advantages_reversed[::-1], dim=1)
        returns = advantages + values
        advantages = verl_F.masked_whiten(advantages, response_mask)
    return advantages, returns


def _group_ids(index: Any, batch_size: int) -> torch.Tensor:
    """Map group labels (any hashables, e.g. uid strings) to dense ids [B] in first-seen order."""
    if isinstance(index, torch.Tensor):  # tensor elements hash by identity, not by value
        index = index.tolist()
    if len(index) != batch_size:
        raise ValueError(f"index has {len(index)} entries but the batch has {batch_size} rows")
    dense: dict = {}
    return torch.tensor([dense.setdefault(key, len(dense)) for key in index], dtype=torch.long)


def _group_stats(scores: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row group size, group mean and unbiased group std (std of a single-row group is nan)."""
    n_groups = int(group.max()) + 1 if group.numel() else 0
    counts = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, group, torch.ones_like(scores))
    sums = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, group, scores)
    means = sums / counts
    squares = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, group, (scores - means[group]) ** 2)
    stds = torch.sqrt(squares / (counts - 1))
    return counts[group], means[group], stds[group]


@register_adv_est(AdvantageEstimator.GRPO)
def compute_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    epsilon: float = 1e-6,
    norm_adv_by_std_in_grpo: bool = True,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO outcome advantage: rewards [B, T], mask [B, T], index [B] group ids -> (adv, adv) [B, T].

    Each response's score (sum of its rewards) minus its group's mean, divided by the group's
    unbiased std + epsilon (not divided when ``norm_adv_by_std_in_grpo`` is False, as in Dr. GRPO).
    A group of one gets mean 0 and std 1, i.e. its raw score.
    """
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        group = _group_ids(index, scores.shape[0]).to(scores.device)
        counts, means, stds = _group_stats(scores.cpu(), group.cpu())
        counts, means, stds = counts.to(scores.device), means.to(scores.device), stds.to(scores.device)
        single = counts == 1
        means = torch.where(single, torch.zeros_like(means), means)
        stds = torch.where(single, torch.ones_like(stds), stds)
        centered = scores - means
        advantages = centered / (stds + epsilon) if norm_adv_by_std_in_grpo else centered
        advantages = advantages.unsqueeze(-1) * response_mask
    return advantages, advantages


@register_adv_est(AdvantageEstimator.RLOO)
def compute_rloo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    epsilon: float = 1e-6,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO (arXiv:2402.14740): score minus the mean score of the *other* responses of its group.

    Written as n / (n - 1) * (score - group mean); a group of one keeps its raw score.
    rewards [B, T], mask [B, T], index [B] -> (adv, adv) [B, T].
    """
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        group = _group_ids(index, scores.shape[0])
        counts, means, _ = _group_stats(scores.cpu(), group)
        counts, means = counts.to(scores.device), means.to(scores.device)
        loo = (scores - means) * counts / (counts - 1)
        advantages = torch.where(counts > 1, loo, scores).unsqueeze(-1) * response_mask
    return advantages, advantages


@register_adv_est(AdvantageEstimator.REINFORCE_PLUS_PLUS)
def compute_reinforce_plus_plus_outcome_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, gamma: float, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ (arXiv:2501.03262): discounted return-to-go, whitened over the batch.

    rewards [B, T], mask [B, T] -> (advantages, returns) [B, T]; the return restarts after the
    response ends, and advantages are zero outside the mask.
    """
    with torch.no_grad():
        returns = torch.zeros_like(token_level_rewards)
        running = torch.zeros_like(token_level_rewards[:, 0])
        for t in reversed(range(token_level_rewards.shape[1])):
            running = token_level_rewards[:, t] + gamma * running
            returns[:, t] = running
            running = running * response_mask[:, t]
        advantages = verl_F.masked_whiten(returns, response_mask) * response_mask
    return advantages, returns


@register_adv_est(AdvantageEstimator.REINFORCE_PLUS_PLUS_BASELINE)
def compute_reinforce_plus_plus_baseline_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    epsilon: float = 1e-6,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ with a group-mean baseline: (score - group mean) on every token, whitened over the batch.

    rewards [B, T], mask [B, T], index [B] -> (adv, adv) [B, T]. A group of one uses baseline 0.
    """
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        group = _group_ids(index, scores.shape[0])
        counts, means, _ = _group_stats(scores.cpu(), group)
        counts, means = counts.to(scores.device), means.to(scores.device)
        centered = scores - torch.where(counts > 1, means, torch.zeros_like(means))
        advantages = centered.unsqueeze(-1).expand_as(token_level_rewards) * response_mask
        advantages = verl_F.masked_whiten(advantages, response_mask) * response_mask
    return advantages, advantages


@register_adv_est(AdvantageEstimator.REMAX)
def compute_remax_outcome_advantage(
    token_level_rewards: torch.Tensor, reward_baselines: torch.Tensor, response_mask: torch.Tensor, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """ReMax (arXiv:2310.10505): reward-to-go minus the greedy response's reward.

    rewards [B, T], reward_baselines [B], mask [B, T] -> (advantages, returns) [B, T].
    """
    with torch.no_grad():
        returns = (token_level_rewards * response_mask).flip(dims=[-1]).cumsum(dim=-1).flip(dims=[-1])
        advantages = returns - reward_baselines.unsqueeze(-1) * response_mask
    return advantages, returns


def compute_rewards(
    token_level_scores: torch.Tensor, old_log_prob: torch.Tensor, ref_log_prob: torch.Tensor, kl_ratio: float
) -> torch.Tensor:
    """Token-level reward with a k1 KL penalty: scores - kl_ratio * (old_log_prob - ref_log_prob); all [B, T]."""
    return token_level_scores - (old_log_prob - ref_log_prob) * kl_ratio


# ----------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------
LOSS_AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
_SEQ_MODES = ("seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _local_count(count: torch.Tensor, dp_size: int, name: str, loss_agg_mode: str) -> torch.Tensor:
    """This batch's own count, allowed only on one rank (each rank sees only its rows); at least 1."""
    if dp_size > 1:
        raise ValueError(f"agg_loss: loss_agg_mode={loss_agg_mode!r} with dp_size={dp_size} needs the global "
                         f"{name} (summed over ranks); this rank only sees its own rows")
    # an all-masked batch gives 0 here where verl divides 0 by 0
    return count.clamp(min=1)


def agg_loss(
    loss_mat: torch.Tensor,
    loss_mask: torch.Tensor,
    loss_agg_mode: str,
    dp_size: int = 1,
    batch_num_tokens: Optional[Union[int, float, torch.Tensor]] = None,
    global_batch_size: Optional[Union[int, float, torch.Tensor]] = None,
    loss_scale_factor: Optional[float] = None,
) -> torch.Tensor:
    """Reduce a per-token loss [B, T] with mask [B, T] to a scalar (verl 0.9's definitions).

    With N = ``batch_num_tokens`` valid tokens and G = ``global_batch_size`` non-empty sequences in the
    whole mini-batch (all micro-batches, all ranks), s_i = the token sum of sequence i, n_i its tokens:

    * "token-mean": sum of the masked losses / N;
    * "token-sum": sum of the masked losses;
    * "seq-mean-token-sum": sum_i s_i / G;
    * "seq-mean-token-mean": sum_i (s_i / n_i) / G;
    * "seq-mean-token-sum-norm" (Dr. GRPO, arXiv:2503.20783): sum_i s_i / G / ``loss_scale_factor``, a
      constant (default T, this batch's padded response length), so a long sequence weighs more but the
      loss does not grow with the batch size.

    Each result is multiplied by ``dp_size``, which undoes data parallelism's averaging of gradients: a
    micro-batch then returns its exact share of the mini-batch loss, and summing the micro-batch losses
    (no division by their number) gives the same gradient for any micro-batch size or rank count (see
    ``verl.workers.actor.micro_batching.global_agg_kwargs``). Without N / G they come from this batch,
    which is only allowed with ``dp_size`` 1 (ValueError otherwise). Sequences with no unmasked token are
    left out of the sequence means.
    """
    if loss_agg_mode == "token-mean":
        if batch_num_tokens is None:
            batch_num_tokens = _local_count(loss_mask.sum(), dp_size, "batch_num_tokens", loss_agg_mode)
        return verl_F.masked_sum(loss_mat, loss_mask) / batch_num_tokens * dp_size
    if loss_agg_mode == "token-sum":
        return verl_F.masked_sum(loss_mat, loss_mask) * dp_size
    if loss_agg_mode in _SEQ_MODES:
        tokens_per_seq = loss_mask.sum(dim=-1)
        seq_losses = verl_F.masked_sum(loss_mat, loss_mask, axis=-1)
        if loss_agg_mode == "seq-mean-token-mean":
            seq_losses = seq_losses / (tokens_per_seq + 1e-8)
        seq_mask = (tokens_per_seq > 0).to(seq_losses.dtype)
        if global_batch_size is None:
            global_batch_size = _local_count(seq_mask.sum(), dp_size, "global_batch_size", loss_agg_mode)
        loss = verl_F.masked_sum(seq_losses, seq_mask) / global_batch_size * dp_size
        if loss_agg_mode == "seq-mean-token-sum-norm":
            scale = loss_mask.shape[-1] if loss_scale_factor is None else loss_scale_factor
            if scale <= 0:
                raise ValueError(f"agg_loss: loss_scale_factor must be > 0, got {loss_scale_factor!r}")
            loss = loss / scale
        return loss
    raise ValueError(f"unknown loss_agg_mode {loss_agg_mode!r}; valid: {list(LOSS_AGG_MODES)}")


# ----------------------------------------------------------------------------------------------
# policy losses
# ----------------------------------------------------------------------------------------------
PolicyLossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
POLICY_LOSS_REGISTRY = NameRegistry("policy loss")


def register_policy_loss(name: str) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: register a policy loss under ``name`` (``actor.policy_loss.loss_mode``); a different
    function may not reuse a name.

    A policy loss is called as verl calls it: ``fn(old_log_prob=, log_prob=, advantages=, response_mask=,
    loss_agg_mode=, config=, rollout_is_weights=)`` with [B, T] tensors and the actor config, whose
    ``global_batch_info`` holds the ``agg_loss`` normalisers of the current mini-batch; it returns
    (scalar loss, {metric name: float}).
    """
    return POLICY_LOSS_REGISTRY.register(name)


def get_policy_loss_fn(name: str) -> PolicyLossFn:
    """The policy loss registered under ``name``; ValueError listing the valid names otherwise."""
    return POLICY_LOSS_REGISTRY.lookup(name)


def _clip_ranges(config, who: str) -> tuple[float, float]:
    """(clip_ratio_low, clip_ratio_high) from an actor config; each defaults to ``clip_ratio``."""
    if config is None:
        raise ValueError(f"{who}: needs the actor config (clip_ratio, clip_ratio_low/high, global_batch_info)")
    clip_ratio = config.get("clip_ratio", 0.2)
    low, high = config.get("clip_ratio_low", None), config.get("clip_ratio_high", None)
    return (clip_ratio if low is None else low), (clip_ratio if high is None else high)


def _global_batch_info(config) -> dict:
    return dict(config.get("global_batch_info", None) or {})


def _clipped_pg_losses(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_low: float,
    cliprange_high: float,
    clip_ratio_c: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token dual-clip PPO losses [B, T] and (pg_clipfrac, ppo_kl, pg_clipfrac_lower) scalars."""
    if clip_ratio_c <= 1.0:
        raise ValueError(f"compute_policy_loss: clip_ratio_c must be > 1.0 for dual clip, got {clip_ratio_c}")
    negative_approx_kl = torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0)  # exp() must not overflow
    ratio = torch.exp(negative_approx_kl)
    ppo_kl = verl_F.masked_mean(-negative_approx_kl, response_mask)

    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - cliprange_low, 1 + cliprange_high)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)
    pg_clipfrac = verl_F.masked_mean(torch.gt(pg_losses2, pg_losses1).float(), response_mask)

    pg_losses3 = -advantages * clip_ratio_c
    clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1)
    pg_clipfrac_lower = verl_F.masked_mean(
        (torch.gt(clip_pg_losses1, pg_losses3) & (advantages < 0)).float(), response_mask
    )
    pg_losses = torch.where(advantages < 0, clip_pg_losses2, clip_pg_losses1)
    return pg_losses, pg_clipfrac, ppo_kl, pg_clipfrac_lower


def compute_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange: Optional[float] = None,
    cliprange_low: Optional[float] = None,
    cliprange_high: Optional[float] = None,
    clip_ratio_c: float = 3.0,
    loss_agg_mode: str = "token-mean",
    **agg_kwargs,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped PPO policy loss with asymmetric clipping and dual clip; all inputs [B, T] (verl v0.4's API;
    the registered ``compute_policy_loss_vanilla`` is the same loss behind verl's config-driven signature).

    ratio = exp(clamp(log_prob - old_log_prob, -20, 20));
    loss = max(-A * ratio, -A * clip(ratio, 1 - cliprange_low, 1 + cliprange_high)), and for A < 0 at
    most -A * clip_ratio_c (dual clip, arXiv:1912.09729). ``cliprange_low``/``cliprange_high``
    default to ``cliprange``. ``agg_kwargs`` go to agg_loss (dp_size, batch_num_tokens, ...).

    Returns (pg_loss, pg_clipfrac, ppo_kl, pg_clipfrac_lower): scalar loss, the fraction of tokens
    clipped by the PPO clip, the mean of old_log_prob - log_prob, and the fraction (over all
    tokens) hit by the dual clip.
    """
    cliprange_low = cliprange if cliprange_low is None else cliprange_low
    cliprange_high = cliprange if cliprange_high is None else cliprange_high
    if cliprange_low is None or cliprange_high is None:
        raise ValueError("compute_policy_loss: give cliprange, or both cliprange_low and cliprange_high")
    pg_losses, pg_clipfrac, ppo_kl, pg_clipfrac_lower = _clipped_pg_losses(
        old_log_prob, log_prob, advantages, response_mask, cliprange_low, cliprange_high, clip_ratio_c
    )
    pg_loss = agg_loss(pg_losses, response_mask, loss_agg_mode, **agg_kwargs)
    return pg_loss, pg_clipfrac, ppo_kl, pg_clipfrac_lower


@register_policy_loss("vanilla")
def compute_policy_loss_vanilla(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config=None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The dual-clip PPO loss of ``compute_policy_loss``, configured by the actor config.

    old_log_prob, log_prob, advantages, response_mask, rollout_is_weights (optional per-token weights):
    [B, T]. ``config`` gives clip_ratio, clip_ratio_low, clip_ratio_high, clip_ratio_c and
    global_batch_info (the agg_loss normalisers). Returns (pg_loss scalar, {actor/pg_clipfrac,
    actor/ppo_kl, actor/pg_clipfrac_lower}).
    """
    low, high = _clip_ranges(config, "compute_policy_loss_vanilla")
    pg_losses, pg_clipfrac, ppo_kl, pg_clipfrac_lower = _clipped_pg_losses(
        old_log_prob, log_prob, advantages, response_mask, low, high, config.get("clip_ratio_c", 3.0)
    )
    if rollout_is_weights is not None:
        pg_losses = pg_losses * rollout_is_weights
    pg_loss = agg_loss(pg_losses, response_mask, loss_agg_mode, **_global_batch_info(config))
    return pg_loss, {
        "actor/pg_clipfrac": pg_clipfrac.item(),
        "actor/ppo_kl": ppo_kl.item(),
        "actor/pg_clipfrac_lower": pg_clipfrac_lower.item(),
    }


@register_policy_loss("gspo")
def compute_policy_loss_gspo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "seq-mean-token-mean",
    config=None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GSPO (Group Sequence Policy Optimization, arXiv:2507.18071): one importance ratio per sequence.

    s_i = exp(mean over sequence i's tokens of (log_prob - old_log_prob)), the length-normalised
    sequence likelihood ratio. Each token t of sequence i gets s_it = sg[s_i] * pi(y_t) / sg[pi(y_t)]:
    its value is s_i and its gradient s_i * grad log pi(y_t), so with "seq-mean-token-mean" the gradient
    is the paper's s_i * A_i * mean_t grad log pi(y_t). Loss per token: max(-A * s_it,
    -A * clip(s_it, 1 - clip_ratio_low, 1 + clip_ratio_high)) (no dual clip); the paper clips at about
    3e-4 / 4e-4 and aggregates with "seq-mean-token-mean". The log-ratio is capped at 10 before exp().

    Inputs [B, T] (as ``compute_policy_loss_vanilla``). Returns (pg_loss scalar, {actor/pg_clipfrac:
    fraction of tokens whose clipped term is the larger, actor/ppo_kl: token mean of old - new log-prob,
    actor/pg_clipfrac_lower: 0}).
    """
    low, high = _clip_ranges(config, "compute_policy_loss_gspo")
    log_ratio = log_prob - old_log_prob
    seq_log_ratio = verl_F.masked_sum(log_ratio, response_mask, axis=-1) / response_mask.sum(-1).clamp(min=1)
    token_log_ratio = log_prob - log_prob.detach() + seq_log_ratio.detach().unsqueeze(-1)
    ratio = torch.exp(torch.clamp(token_log_ratio, max=10.0))

    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - low, 1 + high)
    pg_losses = torch.maximum(pg_losses1, pg_losses2)
    if rollout_is_weights is not None:
        pg_losses = pg_losses * rollout_is_weights
    pg_loss = agg_loss(pg_losses, response_mask, loss_agg_mode, **_global_batch_info(config))
    pg_clipfrac = verl_F.masked_mean(torch.gt(pg_losses2, pg_losses1).float(), response_mask)
    ppo_kl = verl_F.masked_mean(-log_ratio, response_mask)
    return pg_loss, {
        "actor/pg_clipfrac": pg_clipfrac.item(),
        "actor/ppo_kl": ppo_kl.item(),
        "actor/pg_clipfrac_lower": 0.0,
    }


def compute_value_loss(
    vpreds: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
    loss_agg_mode: str = "token-mean",
    **agg_kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss; all inputs [B, T] -> (vf_loss scalar, vf_clipfrac scalar).

    vf_loss = 0.5 * agg(max((vpreds - R)^2, (clip(vpreds, V_old +- cliprange_value) - R)^2)).
    """
    vpred_clipped = verl_F.clip_by_value(vpreds, values - cliprange_value, values + cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpred_clipped - returns) ** 2
    vf_loss = 0.5 * agg_loss(torch.max(vf_losses1, vf_losses2), response_mask, loss_agg_mode, **agg_kwargs)
    vf_clipfrac = verl_F.masked_mean(torch.gt(vf_losses2, vf_losses1).float(), response_mask)
    return vf_loss, vf_clipfrac


def compute_entropy_loss(
    logits: torch.Tensor, response_mask: torch.Tensor, loss_agg_mode: str = "token-mean", **agg_kwargs
) -> torch.Tensor:
    """Aggregated entropy of softmax(logits): logits [B, T, V], mask [B, T] -> scalar."""
    return agg_loss(verl_F.entropy_from_logits(logits), response_mask, loss_agg_mode, **agg_kwargs)


KL_PENALTY_MODES = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")


def kl_penalty(logprob: torch.Tensor, ref_logprob: torch.Tensor, kl_penalty: str) -> torch.Tensor:
    """Per-token KL estimate between the policy and the reference (http://joschu.net/blog/kl-approx.html).

    logprob, ref_logprob [B, T] -> [B, T]:
    "kl"/"k1": log p - log q;  "abs": |log p - log q|;  "mse"/"k2": 0.5 (log p - log q)^2;
    "low_var_kl"/"k3": exp(log q - log p) - (log q - log p) - 1, its log-ratio clamped to
    [-20, 20] and the result to [0, 10] for stability (k3 >= 0 exactly; float32 rounding near a log-ratio of 0
    could otherwise give -6e-8; verl's lower clamp of -10 is never reached).
    """
    if kl_penalty in ("kl", "k1"):
        return logprob - ref_logprob
    if kl_penalty == "abs":
        return (logprob - ref_logprob).abs()
    if kl_penalty in ("mse", "k2"):
        return 0.5 * (logprob - ref_logprob).square()
    if kl_penalty in ("low_var_kl", "k3"):
        kl = torch.clamp(ref_logprob - logprob, min=-20, max=20)
        return torch.clamp(torch.exp(kl) - kl - 1, min=0, max=10)
    raise ValueError(f"unknown kl_penalty {kl_penalty!r}; valid: {list(KL_PENALTY_MODES)}")
