"""The PPO update loop the actor and the critic share: epochs over mini-batches (one optimizer step each), each
accumulated over micro-batches, with exact mini-batch metrics (see ``micro_batching`` for the loss weighting)."""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from verl.protocol import DataProto
from verl.utils.fsdp_utils import fsdp2_clip_grad_norm_

from .micro_batching import (all_reduce, global_agg_kwargs, global_token_count, response_mask_of,
                             split_micro_batches, token_share)


def clipped_optimizer_step(module: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float,
                           who: str) -> torch.Tensor:
    """Clip gradients to ``grad_clip`` and step; skip the step (warning names ``who``) when the gradient norm is not
    finite. Gradients are cleared either way. Returns the gradient norm before clipping (a scalar tensor)."""
    grad_norm = fsdp2_clip_grad_norm_(module.parameters(), grad_clip)
    if torch.isfinite(grad_norm):
        optimizer.step()
    else:
        warnings.warn(f"{who}: gradient norm is {grad_norm.item()}; skipping this optimizer step", stacklevel=3)
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


@dataclass(frozen=True)
class MicroBatchWeights:
    """How one micro-batch's loss and metrics are weighted within its mini-batch (all ranks).

    agg_kwargs: for ``core_algos.agg_loss`` (makes the loss this micro-batch's share, times ``dp_size``);
    dp_size: number of DP ranks (divide per-micro-batch loss values by it for the mini-batch value);
    global_tokens: the mini-batch's valid tokens over all ranks;
    token_share: this micro-batch's fraction of them (weights token-level metrics).
    """

    agg_kwargs: dict
    dp_size: int
    global_tokens: float
    token_share: float


MicroStep = Callable[[dict, torch.Tensor, MicroBatchWeights], Sequence[float]]


def run_mini_batch_updates(data: DataProto, config, micro_step: MicroStep, optimizer: torch.optim.Optimizer,
                           optimizer_step: Callable[[], torch.Tensor], stat_names: Sequence[str], prefix: str,
                           device, dp_group=None) -> dict[str, list]:
    """``config.ppo_epochs`` passes (shuffled when ``config.shuffle``) over mini-batches of
    ``config.ppo_mini_batch_size`` rows of ``data``; each mini-batch is split into micro-batches
    (``ppo_micro_batch_size_per_gpu`` / ``use_dynamic_bsz`` + ``ppo_max_token_len_per_gpu``).

    ``micro_step(batch, response_mask [b, R], weights)`` runs forward and backward on one micro-batch (already on
    ``device``) and returns its weighted contribution to each of ``stat_names``; the sums over micro-batches and
    ranks are the mini-batch values. Then ``optimizer_step()`` steps and returns the gradient norm.

    Returns {f"{prefix}/{name}": one value per mini-batch} for each stat name, then ``{prefix}/grad_norm``.
    """
    loss_agg_mode = config.get("loss_agg_mode", "token-mean")
    metrics: dict[str, list] = defaultdict(list)
    for _ in range(int(config.get("ppo_epochs", 1))):
        epoch_data = data[torch.randperm(len(data))] if config.get("shuffle", False) else data
        for mini in epoch_data.split(int(config.ppo_mini_batch_size)):
            micro_batches, _ = split_micro_batches(
                mini,
                config.get("ppo_micro_batch_size_per_gpu"),
                bool(config.get("use_dynamic_bsz", False)),
                config.get("ppo_max_token_len_per_gpu"),
                dp_group,
            )
            mini_mask = response_mask_of(mini.batch)
            agg_kwargs = global_agg_kwargs(mini_mask, loss_agg_mode, dp_group, config.get("loss_scale_factor", None))
            global_tokens = global_token_count(mini_mask, dp_group)
            stats = torch.zeros(len(stat_names), dtype=torch.float64)
            optimizer.zero_grad(set_to_none=True)
            for micro in micro_batches:
                batch = micro.batch.to(device)
                response_mask = response_mask_of(batch)
                weights = MicroBatchWeights(agg_kwargs, agg_kwargs["dp_size"], global_tokens,
                                            token_share(response_mask, global_tokens))
                stats += torch.tensor(list(micro_step(batch, response_mask, weights)), dtype=torch.float64)
            grad_norm = optimizer_step()
            stats = all_reduce(stats, group=dp_group).tolist()
            for name, value in zip(stat_names, stats):
                metrics[f"{prefix}/{name}"].append(value)
            metrics[f"{prefix}/grad_norm"].append(float(grad_norm))
    return metrics
