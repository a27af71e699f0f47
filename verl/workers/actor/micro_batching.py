"""Micro-batch splitting and the loss normalisation that makes gradients independent of it.

A mini-batch (one optimizer step) is split into micro-batches (one forward/backward each) on every data-parallel
rank. Given the whole mini-batch's size summed over ranks (the token count for "token-mean") and the DP size,
core_algos' ``agg_loss`` returns each micro-batch's exact share of the mini-batch loss, multiplied by the DP size
because FSDP averages gradients over ranks (``global_agg_kwargs``). The accumulated gradient is then the gradient
of the mini-batch loss, whatever the micro-batch size, the number of ranks or the packing of dynamic-size
micro-batches.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist

from verl.protocol import DataProto


def response_mask_of(batch) -> torch.Tensor:
    """``response_mask`` [B, R] from a batch, or the response part of ``attention_mask`` when absent."""
    if "response_mask" in batch.keys():
        return batch["response_mask"]
    return batch["attention_mask"][:, -batch["responses"].shape[-1]:]


def dp_size(group=None) -> int:
    """Number of data-parallel ranks (1 without torch.distributed)."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def all_reduce(tensor: torch.Tensor, op=None, group=None) -> torch.Tensor:
    """In-place all-reduce (SUM by default) over the DP group; a no-op on one process. Returns ``tensor``."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM, group=group)
    return tensor


def global_agg_kwargs(response_mask: torch.Tensor, loss_agg_mode: str, group=None,
                      loss_scale_factor: Optional[float] = None) -> dict:
    """The ``agg_loss`` keyword arguments that make a micro-batch loss its exact share of the mini-batch loss.

    response_mask [b, R] is this rank's whole mini-batch. Always ``dp_size``; token-mean: the mini-batch's
    valid-token count summed over ranks (``batch_num_tokens``); the seq-mean modes (-token-sum, -token-mean,
    -token-sum-norm): its number of non-empty rows summed over ranks (``global_batch_size``); token-sum needs no
    count. ``loss_scale_factor`` (the -norm mode's constant; None: the response length) is passed on. Collective.
    """
    kwargs = {"dp_size": dp_size(group)}
    if loss_agg_mode == "token-mean":
        kwargs["batch_num_tokens"] = global_token_count(response_mask, group)
    elif loss_agg_mode.startswith("seq-mean-"):
        rows = (response_mask.sum(-1) > 0).sum().double().reshape(1)
        kwargs["global_batch_size"] = float(all_reduce(rows, group=group).item())
    if loss_scale_factor is not None:
        kwargs["loss_scale_factor"] = loss_scale_factor
    return kwargs


def global_token_count(response_mask: torch.Tensor, group=None) -> float:
    """Valid tokens of this rank's mini-batch summed over ranks (weights token-level metrics). Collective."""
    return float(all_reduce(response_mask.sum().double().reshape(1), group=group).item())


def token_share(micro_mask: torch.Tensor, global_tokens: float) -> float:
    """The fraction of the mini-batch's valid tokens (all ranks) that sit in one micro-batch."""
    return float(micro_mask.sum().item()) / global_tokens if global_tokens > 0 else 0.0


def _balanced_partition(lengths: list[int], k: int) -> list[list[int]]:
    """Split row indices into k non-empty groups with similar token totals (longest first, into the lightest)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = [[] for _ in range(k)]
    totals = [0] * k
    for j, i in enumerate(order):
        # the first k rows seed the k bins so that none stays empty
        b = j if j < k else min(range(k), key=lambda b_: totals[b_])
        bins[b].append(i)
        totals[b] += lengths[i]
    return [sorted(b) for b in bins]


def split_micro_batches(
    data: DataProto,
    micro_batch_size: Optional[int] = None,
    use_dynamic_bsz: bool = False,
    max_token_len: Optional[int] = None,
    group=None,
) -> tuple[list[DataProto], Optional[list[int]]]:
    """Split ``data`` into micro-batches.

    Fixed size: consecutive chunks of ``micro_batch_size`` rows. Dynamic: rows are packed into the fewest groups
    whose total valid tokens (``attention_mask`` sum) is about ``max_token_len``; every DP rank uses the same
    number of groups (FSDP needs the same number of forward/backward passes on every rank).
    Returns (micro-batches, order): ``order`` lists the original row index of each row in the concatenated
    micro-batches (None for the fixed-size split, which keeps the order).
    """
    n = len(data)
    if not use_dynamic_bsz:
        if not micro_batch_size or micro_batch_size <= 0:
            raise ValueError(
                f"micro_batch_size={micro_batch_size!r}: set ppo_micro_batch_size_per_gpu / "
                "log_prob_micro_batch_size_per_gpu (or use_dynamic_bsz with a max token length)"
            )
        return data.split(int(micro_batch_size)), None
    if not max_token_len or max_token_len <= 0:
        raise ValueError(f"use_dynamic_bsz needs a positive max token length per GPU, got {max_token_len!r}")
    lengths = data.batch["attention_mask"].sum(-1).tolist()
    k = min(n, max(1, -(-int(sum(lengths)) // int(max_token_len))))
    k_t = torch.tensor([k], dtype=torch.int64)
    k = int(all_reduce(k_t, op=dist.ReduceOp.MAX if dist.is_available() else None, group=group).item())
    if k > n:
        raise ValueError(f"dynamic batching needs {k} micro-batches but this rank holds only {n} rows")
    groups = _balanced_partition([int(x) for x in lengths], k)
    order = [i for g in groups for i in g]
    return [data[torch.tensor(g)] for g in groups], order


def restore_order(tensor: torch.Tensor, order: Optional[list[int]]) -> torch.Tensor:
    """Undo the row permutation of ``split_micro_batches`` on a tensor [B, ...] built from its micro-batches."""
    if order is None:
        return tensor
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return tensor[inverse.to(tensor.device)]
