"""Small tensor functions shared by workers and the trainer (names and semantics follow verl).

Shapes: B = batch, T = sequence length, V = vocabulary size. Masks hold 0/1 (any dtype).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR

# Rows of logits handled at once by the chunked log-prob / entropy kernels: bounds the float32
# temporaries to about this many elements whatever the batch size (64 MiB at float32).
CHUNK_ELEMENTS = 1 << 24


# ----------------------------------------------------------------------------------------------
# masked statistics
# ----------------------------------------------------------------------------------------------
def masked_sum(values: torch.Tensor, mask: torch.Tensor, axis: Optional[int] = None) -> torch.Tensor:
    """Sum of ``values * mask`` over ``axis`` (all dims when None)."""
    return (values * mask).sum(axis) if axis is not None else (values * mask).sum()


def masked_mean(values: torch.Tensor, mask: torch.Tensor, axis: Optional[int] = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1: sum(values * mask) / (sum(mask) + 1e-8); 0 for an empty mask."""
    count = mask.sum(axis) if axis is not None else mask.sum()
    return masked_sum(values, mask, axis) / (count + 1e-8)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``values`` over the masked elements (scalar); unbiased (n - 1) by default.

    Raises ValueError when the mask is empty, or holds a single element with ``unbiased=True``.
    """
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n == 0:
            raise ValueError("masked_var: the mask is empty (at least one element must be 1)")
        if n == 1:
            raise ValueError("masked_var: the mask holds a single element; the unbiased variance divides by zero")
        variance = variance * n / (n - 1)
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / sqrt(var + 1e-8) with mean and unbiased var over the mask; keeps the mean if not shift_mean."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened


def clip_by_value(x: torch.Tensor, tensor_min, tensor_max) -> torch.Tensor:
    """Element-wise clamp of ``x`` into [tensor_min, tensor_max] (bounds may be tensors)."""
    return torch.max(torch.min(x, torch.as_tensor(tensor_max, dtype=x.dtype, device=x.device)),
                     torch.as_tensor(tensor_min, dtype=x.dtype, device=x.device))


# ----------------------------------------------------------------------------------------------
# log-probs and entropy from logits, chunked so memory stays bounded
# ----------------------------------------------------------------------------------------------
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _row_chunks(n_rows: int, vocab: int):
    step = max(1, CHUNK_ELEMENTS // max(vocab, 1))
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


class _LogProbsFromLogits(torch.autograd.Function):
    """log_softmax(logits)[label] computed chunk by chunk; backward recomputes softmax per chunk.

    Saved for backward: only the logits (in their own dtype) and labels, never a float32 copy.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        flat, flat_labels = logits.reshape(-1, vocab), labels.reshape(-1)
        out = torch.empty(flat.shape[0], dtype=_compute_dtype(logits.dtype), device=logits.device)
        for start, end in _row_chunks(flat.shape[0], vocab):
            chunk = flat[start:end].to(out.dtype)
            picked = chunk.gather(-1, flat_labels[start:end, None]).squeeze(-1)
            out[start:end] = picked - torch.logsumexp(chunk, dim=-1)
        ctx.save_for_backward(logits, labels)
        return out.view(labels.shape)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, labels = ctx.saved_tensors
        return _log_prob_grad(logits, labels, grad_out), None


def _log_prob_grad(logits: torch.Tensor, labels: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """d(sum grad_out * log_softmax(logits)[label]) / d logits = grad_out * (onehot(label) - softmax), chunked."""
    vocab = logits.shape[-1]
    flat, flat_labels = logits.reshape(-1, vocab), labels.reshape(-1)
    flat_grad_out = grad_out.reshape(-1)
    grad = torch.empty_like(flat)
    for start, end in _row_chunks(flat.shape[0], vocab):
        g_out = flat_grad_out[start:end, None].to(_compute_dtype(logits.dtype))
        chunk_grad = -torch.softmax(flat[start:end].to(g_out.dtype), dim=-1) * g_out
        chunk_grad.scatter_add_(-1, flat_labels[start:end, None], g_out)
        grad[start:end] = chunk_grad.to(grad.dtype)
    return grad.view_as(logits)


def _logsumexp_and_entropy(chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp and entropy of softmax(chunk) per row [n, V] -> ([n], [n]) with a single exp over the chunk
    (softmax + logsumexp cost three passes of exp / max; this is ~2.5x faster on CPU)."""
    row_max = chunk.amax(dim=-1, keepdim=True)
    shifted = chunk - row_max
    unnormalized = shifted.exp()
    total = unnormalized.sum(-1)
    log_total = total.log()
    entropy = log_total - (unnormalized * shifted).sum(-1) / total
    return row_max.squeeze(-1) + log_total, entropy


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, inplace_backward: bool = True) -> torch.Tensor:
    """Log-probability of each label: logits [..., V], labels [...] (int64) -> [...].

    Computed in float32 (float64 stays float64) a few rows at a time, so neither the forward nor
    the backward pass materializes a full-vocabulary float32 softmax for the whole batch; the
    result is float32 even for bf16 logits (verl returns the logits' dtype there; ratios of
    bf16 log-probs are too coarse for PPO clipping). ``inplace_backward`` is accepted for verl
    compatibility (it selects flash-attn's kernel there) and changes nothing here.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logprobs_from_logits: logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    return _LogProbsFromLogits.apply(logits, labels.long())


class _EntropyFromLogits(torch.autograd.Function):
    """Entropy of softmax(logits) per row, chunked; dH/dz = -p * (log p + H), recomputed per chunk."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        flat = logits.reshape(-1, vocab)
        out = torch.empty(flat.shape[0], dtype=_compute_dtype(logits.dtype), device=logits.device)
        for start, end in _row_chunks(flat.shape[0], vocab):
            out[start:end] = _logsumexp_and_entropy(flat[start:end].to(out.dtype))[1]
        ctx.save_for_backward(logits, out)
        return out.view(logits.shape[:-1])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, entropy = ctx.saved_tensors
        vocab = logits.shape[-1]
        flat, flat_grad_out = logits.reshape(-1, vocab), grad_out.reshape(-1)
        grad = torch.empty_like(flat)
        for start, end in _row_chunks(flat.shape[0], vocab):
            log_probs = torch.log_softmax(flat[start:end].to(entropy.dtype), dim=-1)
            chunk_grad = -log_probs.exp() * (log_probs + entropy[start:end, None])
            grad[start:end] = (chunk_grad * flat_grad_out[start:end, None].to(entropy.dtype)).to(grad.dtype)
        return grad.view_as(logits)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution softmax(logits): [..., V] -> [...] (float32, chunked)."""
    return _EntropyFromLogits.apply(logits)


class _LogProbsAndEntropyFromLogits(torch.autograd.Function):
    """Log-probs (differentiable, as ``_LogProbsFromLogits``) and entropy (not differentiable) in one pass."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor):
        vocab = logits.shape[-1]
        flat, flat_labels = logits.reshape(-1, vocab), labels.reshape(-1)
        dtype = _compute_dtype(logits.dtype)
        log_probs = torch.empty(flat.shape[0], dtype=dtype, device=logits.device)
        entropy = torch.empty_like(log_probs)
        for start, end in _row_chunks(flat.shape[0], vocab):
            chunk = flat[start:end].to(dtype)
            lse, entropy[start:end] = _logsumexp_and_entropy(chunk)
            log_probs[start:end] = chunk.gather(-1, flat_labels[start:end, None]).squeeze(-1) - lse
        ctx.save_for_backward(logits, labels)
        entropy = entropy.view(labels.shape)
        ctx.mark_non_differentiable(entropy)
        return log_probs.view(labels.shape), entropy

    @staticmethod
    def backward(ctx, grad_log_probs: torch.Tensor, _grad_entropy):
        logits, labels = ctx.saved_tensors
        return _log_prob_grad(logits, labels, grad_log_probs), None


def logprobs_and_entropy_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs of ``labels``, entropy), both [...], from logits [..., V] and labels [...] in one chunked pass.

    The log-probs carry gradients like ``logprobs_from_logits``; the entropy is detached (a metric: when the
    entropy is part of the loss, use ``entropy_from_logits``). Costs ~10% more than the log-probs alone, where a
    separate ``entropy_from_logits`` pass costs ~2.5x the log-probs' forward.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logprobs_and_entropy_from_logits: logits {tuple(logits.shape)} do not match labels "
                         f"{tuple(labels.shape)}")
    return _LogProbsAndEntropyFromLogits.apply(logits, labels.long())


def log_probs_from_logits_response(input_ids: torch.Tensor, logits: torch.Tensor, response_length: int) -> torch.Tensor:
    """Log-probs of the last ``response_length`` tokens: input_ids [B, T], logits [B, T, V] -> [B, response_length].

    The logit at position t predicts token t + 1, hence the shift by one.
    """
    response_logits = logits[:, -response_length - 1 : -1]
    return logprobs_from_logits(response_logits, input_ids[:, -response_length:])


# ----------------------------------------------------------------------------------------------
# masks, padding, tokenization
# ----------------------------------------------------------------------------------------------
def get_response_mask(
    response_id: torch.Tensor, eos_token: Union[int, Sequence[int]] = 2, dtype: torch.dtype = torch.int64
) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after it: response_id [B, T] -> [B, T].

    ``eos_token`` may be one id or a list of ids.
    """
    eos_ids = torch.as_tensor(eos_token, device=response_id.device).reshape(-1)
    is_eos = torch.isin(response_id, eos_ids).int()
    eos_before = is_eos.cumsum(dim=1) - is_eos  # EOS tokens strictly before each position
    return eos_before.eq(0).to(dtype)


def compute_position_id_with_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: mask [B, T] -> [B, T] (0 on padding before the first token)."""
    return torch.clip(torch.cumsum(mask, dim=-1) - 1, min=0)


def pad_2d_list_to_length(response: Sequence[Sequence[int]], pad_token_id: int, max_length: Optional[int] = None) -> torch.Tensor:
    """Right-pad lists of token ids into a LongTensor [B, max(max_length, longest)]."""
    longest = max((len(r) for r in response), default=0)
    target = max(longest, max_length or 0)
    out = torch.full((len(response), target), pad_token_id, dtype=torch.long)
    for i, row in enumerate(response):
        out[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out


def pad_sequence_to_length(tensors: torch.Tensor, max_seq_len: int, pad_token_id, left_pad: bool = False) -> torch.Tensor:
    """Pad the last dim of ``tensors`` [..., T] to ``max_seq_len`` (unchanged when already that long)."""
    missing = max_seq_len - tensors.shape[-1]
    if missing <= 0:
        return tensors
    pad = (missing, 0) if left_pad else (0, missing)
    return F.pad(tensors, pad, "constant", pad_token_id)


def postprocess_data(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_length: int,
    pad_token_id: int,
    left_pad: bool = True,
    truncation: str = "error",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad or truncate input_ids / attention_mask [B, T] to [B, max_length].

    truncation: "left" (keep the end), "right" (keep the start), "middle" (keep both ends) or
    "error" (raise ValueError naming the lengths).
    """
    if input_ids.dim() != 2:
        raise ValueError(f"postprocess_data: input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
    seq_len = input_ids.shape[-1]
    if seq_len < max_length:
        input_ids = pad_sequence_to_length(input_ids, max_length, pad_token_id, left_pad=left_pad)
        attention_mask = pad_sequence_to_length(attention_mask, max_length, 0, left_pad=left_pad)
    elif seq_len > max_length:
        if truncation == "left":
            input_ids, attention_mask = input_ids[:, -max_length:], attention_mask[:, -max_length:]
        elif truncation == "right":
            input_ids, attention_mask = input_ids[:, :max_length], attention_mask[:, :max_length]
        elif truncation == "middle":
            head = max_length // 2
            tail = max_length - head
            input_ids = torch.cat([input_ids[:, :head], input_ids[:, seq_len - tail :]], dim=-1)
            attention_mask = torch.cat([attention_mask[:, :head], attention_mask[:, seq_len - tail :]], dim=-1)
        elif truncation == "error":
            raise ValueError(f"input length {seq_len} is longer than max_length {max_length}")
        else:
            raise ValueError(f"unknown truncation {truncation!r}; valid: 'left', 'right', 'middle', 'error'")
    return input_ids, attention_mask


def tokenize_and_postprocess_data(
    prompt: str, tokenizer, max_length: int, pad_token_id: int, left_pad: bool = True, truncation: str = "error"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize one prompt (no special tokens added) and pad/truncate it to [1, max_length]."""
    encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    return postprocess_data(encoded["input_ids"], encoded["attention_mask"], max_length, pad_token_id, left_pad, truncation)


def remove_pad_token(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
    """The non-padding ids of each row (by attention_mask, left or right padding): [B, T] -> B lists."""
    return [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]


def unpad_input(hidden_states: torch.Tensor, attention_mask: torch.Tensor):
    """Drop padding positions: hidden_states [B, T, ...], attention_mask [B, T] ->
    (packed [nnz, ...], indices [nnz] into the flattened B*T, cu_seqlens [B + 1] int32, max_seqlen int).

    The same contract as flash-attn's ``bert_padding.unpad_input`` (first four outputs).
    """
    seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    max_seqlen = int(seqlens.max().item()) if seqlens.numel() else 0
    packed = hidden_states.reshape(-1, *hidden_states.shape[2:])[indices]
    return packed, indices, cu_seqlens, max_seqlen


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Inverse of unpad_input: packed [nnz, ...] -> [batch, seqlen, ...] with zeros at padding positions."""
    out = hidden_states.new_zeros(batch * seqlen, *hidden_states.shape[1:])
    out[indices] = hidden_states
    return out.view(batch, seqlen, *hidden_states.shape[1:])


# ----------------------------------------------------------------------------------------------
# learning-rate schedules
# ----------------------------------------------------------------------------------------------
def get_constant_schedule_with_warmup(optimizer, num_warmup_steps: int, last_epoch: int = -1) -> LambdaLR:
    """LR factor grows linearly from 0 to 1 over ``num_warmup_steps``, then stays 1."""

    def lr_lambda(step: int) -> float:
        if num_warmup_steps <= 0:
            return 1.0
        return min(1.0, float(step) / float(num_warmup_steps))

    return LambdaLR(optimizer, lr_lambda, last_epoch)


def get_cosine_schedule_with_warmup(
    optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup to 1, then cosine decay to ``min_lr_ratio`` over the remaining steps."""
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    coef, intercept = (1 - min_lr_ratio) * 0.5, (1 + min_lr_ratio) * 0.5

    def lr_lambda(step: int) -> float:
        if step < num_warmup_steps:
            return float(step) / float(max(1, num_warmup_steps))
        progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, math.cos(math.pi * float(num_cycles) * 2.0 * progress) * coef + intercept)

    return LambdaLR(optimizer, lr_lambda, last_epoch)
