"""Remove-padding (packed sequence) inputs for the actor and critic forward passes.

The packed row carries each sequence's own position ids (restarting at 0), from which transformers builds a
block-diagonal causal mask (sdpa/eager, CPU included) or varlen boundaries (flash-attention 2), so sequences never
attend to each other and no compute is spent on padding.
"""
from __future__ import annotations

import warnings

import torch

from verl.utils.torch_functional import pad_input, unpad_input


def pack_batch(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pack [B, S] tensors: returns input_ids [1, nnz], position_ids [1, nnz] and the flat indices [nnz] of the
    kept tokens (for ``unpack``)."""
    ids, indices, _, _ = unpad_input(input_ids.unsqueeze(-1), attention_mask)
    pos, _, _, _ = unpad_input(position_ids.unsqueeze(-1), attention_mask)
    return ids.transpose(0, 1), pos.transpose(0, 1), indices


def unpack(packed: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Scatter per-token values [nnz] back to [B, S] (0 at padding); keeps autograd."""
    return pad_input(packed.unsqueeze(-1), indices, batch, seqlen).squeeze(-1)


def response_predictor_positions(
    attention_mask: torch.Tensor, indices: torch.Tensor, response_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the logits of the response tokens come from in a packed row.

    Args:
        attention_mask: [B, S] (left-padded prompt, right-padded response of ``response_length`` columns).
        indices: [nnz] flat indices of the kept tokens, from ``pack_batch``.
    Returns:
        positions [N]: the packed positions whose next token is a real response token (in row-major order of the
        response tokens), for ``logits_to_keep``; and valid [B, R] (bool), where those N response tokens are.
    """
    batch, seqlen = attention_mask.shape
    packed_index = torch.full((batch * seqlen,), -1, dtype=torch.long, device=indices.device)
    packed_index[indices] = torch.arange(indices.numel(), device=indices.device)
    packed_index = packed_index.view(batch, seqlen)
    valid = attention_mask[:, seqlen - response_length:].bool()
    positions = packed_index[:, seqlen - response_length - 1: seqlen - 1][valid]
    if (positions < 0).any():
        rows = sorted(set(valid.nonzero()[:, 0][positions < 0].tolist()))
        raise ValueError(f"rows {rows}: a response token follows padding; prompts must be left-padded and "
                         "responses right-padded, with at least one prompt token")
    return positions, valid


def packed_sequences_supported(attn_implementation: str) -> bool:
    """Whether the model keeps packed sequences apart: flash-attention 2 (varlen) always; sdpa / eager only with
    transformers' packed-sequence masks (``masking_utils.find_packed_sequence_indices``, transformers >= 4.54)."""
    if attn_implementation and attn_implementation.startswith("flash_attention"):
        return True
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_remove_padding(requested: bool, module) -> bool:
    """``requested`` unless the module's attention cannot separate packed sequences (then warn, use padding)."""
    if not requested:
        return False
    config = getattr(module, "config", None)
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if packed_sequences_supported(impl):
        return True
    warnings.warn(
        f"use_remove_padding=True needs flash-attention 2 or transformers >= 4.54 for attn_implementation={impl!r}; "
        "falling back to padded batches",
        stacklevel=3,
    )
    return False
