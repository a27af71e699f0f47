"""HF rollout engine: batched autoregressive sampling with a KV cache on the actor's own (FSDP2) module.

The sampling loop is ours rather than ``model.generate`` on purpose: ``generate`` merges the checkpoint's
``generation_config`` (e.g. a repetition penalty) into sampling, which would make the behaviour policy differ from
``logits / temperature`` that ``compute_log_prob`` scores. Here the distribution is exactly
softmax(filter(logits / temperature)) with optional top-k / top-p filtering, or argmax for greedy.

Generation runs on full parameters gathered once from FSDP2 (``fsdp2_full_params``) and released on exit, so no
second copy of the weights lives on during training.
"""
from __future__ import annotations

import inspect
import time
from typing import Optional, Sequence

import torch
from torch import nn

from verl.protocol import DataProto
from verl.utils.fsdp_utils import compute_device, fsdp2_full_params, unwrapped_model_class

from .base import BaseRollout, assemble_rollout_output, read_generation_request, resolve_sampling
from .kv_cache import decode_cache


def filter_logits(logits: torch.Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None) -> torch.Tensor:
    """Mask logits [B, V] outside the top-k and outside the top-p nucleus with -inf. ``top_k`` <= 0 / None and
    ``top_p`` >= 1 / None disable the filter. At least one token always survives."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # mass of the tokens strictly before each one; a token is dropped once that mass already exceeds top_p
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before > top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, sorted_idx, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_token(
    logits: torch.Tensor,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Next token ids [B] from last-position logits [B, V]: argmax when greedy (``do_sample`` False or
    temperature <= 0), else a draw from softmax(filter(logits / temperature))."""
    logits = logits.float()
    if not do_sample or temperature <= 0:
        return torch.argmax(logits, dim=-1)
    logits = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
    return sample_from_probs(torch.softmax(logits, dim=-1), generator=generator)


def sample_from_probs(probs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One token id per row [B], drawn from ``probs`` [B, V] (non-negative rows; they need not sum exactly to 1).

    Inverse CDF: one uniform per row, scaled to the row's total mass, located in the cumulative sum. This is the
    same distribution as ``torch.multinomial(probs, 1)``, which on CPU draws an exponential variate for every
    vocabulary entry (~15x slower at V=1.6k, ~25x at Qwen2.5's 152k; it was 15% of a GRPO step here). The cumsum
    is float32 (float64 costs 9x more on CPU at 152k), so a token's probability is resolved to ~1e-7 absolute.
    A zero-probability token (e.g. outside top-k / top-p) is never drawn: ``right=True`` returns the first token
    whose cdf exceeds u, and a zero-probability token's cdf equals its predecessor's.
    """
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, generator=generator, device=probs.device, dtype=cdf.dtype) * total
    # u * total may round up to total; keep u strictly below it so the last token with mass is the furthest pick
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)


def _cache_kwarg(module: nn.Module) -> str:
    """The forward argument that takes the KV cache: ``cache`` in transformers >= 5.x, ``past_key_values`` before."""
    params = inspect.signature(unwrapped_model_class(module).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _returned_cache(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@torch.no_grad()
def generate_batch(
    module: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    response_length: int,
    eos_token_id: Sequence[int],
    pad_token_id: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate up to ``response_length`` tokens for each left-padded prompt.

    Args:
        input_ids, attention_mask, position_ids: [B, P] left-padded prompts.
    Returns:
        responses [B, R] (pad_token_id after the first EOS and after early stop) and response_mask [B, R]
        (1 up to and including the first EOS), with R = response_length.
    """
    batch_size = input_ids.shape[0]
    device = input_ids.device
    eos = torch.tensor(list(eos_token_id), device=device)
    responses = torch.full((batch_size, response_length), pad_token_id, dtype=input_ids.dtype, device=device)
    response_mask = torch.zeros((batch_size, response_length), dtype=attention_mask.dtype, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    cache_kwarg = _cache_kwarg(module)
    # one KV buffer for prompt + response, grown by views (kv_cache.py); None: the model's default cache
    cache = decode_cache(module, input_ids.shape[1] + response_length)

    out = module(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=True,
        logits_to_keep=1,
        **({cache_kwarg: cache} if cache is not None else {}),
    )
    cache = _returned_cache(out)
    next_logits = out.logits[:, -1, :]
    attn = attention_mask
    pos = position_ids[:, -1:]
    for step in range(response_length):
        token = sample_next_token(next_logits, do_sample, temperature, top_k, top_p)
        token = torch.where(finished, torch.full_like(token, pad_token_id), token)
        responses[:, step] = token
        response_mask[:, step] = (~finished).to(response_mask.dtype)
        finished = finished | torch.isin(token, eos)
        if bool(finished.all()) or step == response_length - 1:
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        pos = pos + 1
        out = module(
            input_ids=token.unsqueeze(-1),
            attention_mask=attn,
            position_ids=pos,
            use_cache=True,
            **{cache_kwarg: cache},
        )
        cache = _returned_cache(out)
        next_logits = out.logits[:, -1, :]
    return responses, response_mask


class HFRollout(BaseRollout):
    """Rollout with the HF model held by the actor (shared, not copied).

    ``config`` is the ``actor_rollout_ref.rollout`` section: temperature, top_k (<= 0 disables), top_p, do_sample,
    response_length, val_kwargs.{do_sample, temperature, top_k, top_p}, optional micro_batch_size (rows per
    generation call; all rows at once when unset).
    """

    def __init__(self, module: nn.Module, config):
        self.module = module
        self.config = config

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        """See ``BaseRollout.generate_sequences``; metrics: ``timing_s/generate_sequences`` (seconds)."""
        start = time.perf_counter()
        meta = prompts.meta_info
        eos, pad, response_length = read_generation_request(prompts, self.config.response_length)
        params = resolve_sampling(self.config, meta)
        micro = self.config.get("micro_batch_size", None) or len(prompts)

        idx = prompts.batch["input_ids"]
        prompt_mask = prompts.batch["attention_mask"]
        prompt_pos = prompts.batch["position_ids"]
        device = compute_device(self.module)
        was_training = self.module.training
        self.module.eval()
        chunks = []
        try:
            with fsdp2_full_params(self.module):
                for s in range(0, len(prompts), micro):
                    sl = slice(s, s + micro)
                    chunks.append(
                        generate_batch(
                            self.module,
                            idx[sl].to(device),
                            prompt_mask[sl].to(device),
                            prompt_pos[sl].to(device),
                            response_length,
                            eos,
                            pad,
                            **params,
                        )
                    )
        finally:
            self.module.train(was_training)
            if device.type == "cuda":
                torch.cuda.empty_cache()  # give the KV cache back before training
        responses = torch.cat([c[0] for c in chunks]).to(idx.device)
        response_mask = torch.cat([c[1] for c in chunks]).to(idx.device)
        return assemble_rollout_output(prompts, responses, response_mask, start)
