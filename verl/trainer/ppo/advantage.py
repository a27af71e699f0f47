"""The driver's math between reward and update: KL-in-reward, response masks, advantages (via core_algos)."""
from __future__ import annotations

import torch

from verl.protocol import DataProto
from verl.trainer.ppo import core_algos


def compute_response_mask(data: DataProto) -> torch.Tensor:
    """1 on response tokens up to and including EOS: [B, R], from the attention mask's response part."""
    response_length = data.batch["responses"].shape[-1]
    return data.batch["attention_mask"][:, -response_length:]


def apply_kl_penalty(data: DataProto, kl_ctrl, kl_penalty: str = "kl") -> tuple[DataProto, dict[str, float]]:
    """token_level_rewards = token_level_scores - beta * KL(old || ref) per token; updates ``kl_ctrl``.

    Needs token_level_scores, old_log_probs, ref_log_prob, response_mask [B, R]. Returns the batch (with
    token_level_rewards [B, R]) and metrics actor/reward_kl_penalty, actor/reward_kl_penalty_coeff.
    """
    mask = data.batch["response_mask"]
    kld = core_algos.kl_penalty(data.batch["old_log_probs"], data.batch["ref_log_prob"], kl_penalty=kl_penalty) * mask
    beta = kl_ctrl.value
    data.batch["token_level_rewards"] = data.batch["token_level_scores"] - beta * kld
    per_seq = (kld * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    current_kl = per_seq.mean().item()
    kl_ctrl.update(current_kl=current_kl, n_steps=len(data))
    return data, {"actor/reward_kl_penalty": current_kl, "actor/reward_kl_penalty_coeff": beta}


def compute_advantage(data: DataProto, adv_estimator: str, gamma: float = 1.0, lam: float = 1.0,
                      num_repeat: int = 1, norm_adv_by_std_in_grpo: bool = True) -> DataProto:
    """Fill ``advantages`` and ``returns`` [B, R] with the estimator registered in core_algos under
    ``adv_estimator`` (gae, grpo, rloo, reinforce_plus_plus[_baseline], remax, or a user-registered one).

    Needs token_level_rewards, response_mask [B, R]; values [B, R] for gae; non-tensor ``uid`` (prompt id)
    for the group estimators; reward_baselines [B] for remax. ``num_repeat`` is kept for verl's signature.
    """
    b = data.batch
    fn = core_algos.get_adv_estimator_fn(adv_estimator)
    kwargs = {"token_level_rewards": b["token_level_rewards"], "response_mask": b["response_mask"],
              "gamma": gamma, "lam": lam, "norm_adv_by_std_in_grpo": norm_adv_by_std_in_grpo}
    for key in ("values", "reward_baselines"):
        if key in b.keys():
            kwargs[key] = b[key]
    if adv_estimator == "gae" and "values" not in kwargs:
        raise KeyError("algorithm.adv_estimator=gae needs critic values in the batch")
    if "uid" in data.non_tensor_batch:
        kwargs["index"] = data.non_tensor_batch["uid"]
    b["advantages"], b["returns"] = fn(**kwargs)
    return data
