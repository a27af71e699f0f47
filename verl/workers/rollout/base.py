"""The interface every rollout engine (HF, vLLM) implements, and the input reading and output assembly they share."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod

import torch

from verl.protocol import DataProto


class BaseRollout(ABC):
    """A rollout engine: one response per prompt row (the driver has already repeated prompts ``rollout.n`` times)."""

    @abstractmethod
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        """Generate responses.

        Input batch: ``input_ids``, ``attention_mask``, ``position_ids`` [B, P], left-padded; meta_info
        ``eos_token_id``, ``pad_token_id`` and optional ``do_sample``, ``validate``, ``response_length``.
        Output batch: ``prompts`` [B, P], ``responses`` [B, R], ``input_ids`` / ``attention_mask`` /
        ``position_ids`` [B, P+R], ``response_mask`` [B, R]; the input's non-tensor batch is carried through.
        meta_info ``metrics``: numbers with verl's names; wall times in seconds as ``timing_s/<name>`` (e.g.
        ``timing_s/generate_sequences``), which the driver logs under those names.
        """


def eos_token_ids(eos_token_id) -> list[int]:
    """``meta_info['eos_token_id']`` (an int, a list of ints or a tensor) as a list of ints."""
    if eos_token_id is None:
        raise ValueError("generate_sequences needs meta_info['eos_token_id'] (an int or a list of ints)")
    if isinstance(eos_token_id, torch.Tensor):
        return [int(e) for e in eos_token_id.flatten().tolist()]
    if isinstance(eos_token_id, (list, tuple)):
        return [int(e) for e in eos_token_id]
    return [int(eos_token_id)]


def read_generation_request(prompts: DataProto, default_response_length: int) -> tuple[list[int], int, int]:
    """Check that ``prompts.batch`` has input_ids / attention_mask / position_ids and read its meta_info.

    Returns (eos ids, pad id (the first eos id when ``pad_token_id`` is unset), response length
    (``meta_info['response_length']`` or ``default_response_length``)).
    """
    for key in ("input_ids", "attention_mask", "position_ids"):
        if key not in prompts.batch.keys():
            raise KeyError(f"generate_sequences: prompts.batch lacks {key!r} (has {sorted(prompts.batch.keys())})")
    meta = prompts.meta_info
    eos = eos_token_ids(meta.get("eos_token_id"))
    pad = meta.get("pad_token_id", None)
    pad = eos[0] if pad is None else int(pad)
    return eos, pad, int(meta.get("response_length", default_response_length))


def resolve_sampling(config, meta_info: dict) -> dict:
    """Sampling settings for one ``generate_sequences`` call, the same for every engine: meta_info ``do_sample`` /
    ``temperature`` override the config; ``validate`` switches to ``val_kwargs``.

    Returns {"do_sample", "temperature", "top_k" (-1: off), "top_p"}; greedy when do_sample is False or
    temperature <= 0.
    """
    source = config.get("val_kwargs", None) if meta_info.get("validate", False) else None
    source = source if source is not None else config
    do_sample = bool(meta_info.get("do_sample", source.get("do_sample", True)))
    temperature = float(meta_info.get("temperature", source.get("temperature", 1.0)))
    top_k = int(source.get("top_k", -1) or -1)
    return {
        "do_sample": do_sample and temperature > 0,
        "temperature": temperature,
        "top_k": top_k if top_k > 0 else -1,
        "top_p": float(source.get("top_p", 1.0) or 1.0),
    }


def assemble_rollout_output(prompts: DataProto, responses: torch.Tensor, response_mask: torch.Tensor,
                            start_time: float) -> DataProto:
    """The ``generate_sequences`` output (see ``BaseRollout``) from the prompts and the generated responses [B, R]
    (padded after EOS) with their response_mask [B, R]; ``timing_s/generate_sequences`` counts from
    ``start_time`` (``time.perf_counter()``). Response positions continue each row's last prompt position."""
    idx = prompts.batch["input_ids"]
    prompt_mask = prompts.batch["attention_mask"]
    prompt_pos = prompts.batch["position_ids"]
    response_length = responses.shape[-1]
    delta = torch.arange(1, response_length + 1, dtype=prompt_pos.dtype, device=prompt_pos.device)
    response_pos = prompt_pos[:, -1:] + delta.unsqueeze(0)
    batch = {
        "prompts": idx,
        "responses": responses,
        "input_ids": torch.cat([idx, responses], dim=-1),
        "attention_mask": torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=-1),
        "position_ids": torch.cat([prompt_pos, response_pos], dim=-1),
        "response_mask": response_mask,
    }
    metrics = {"timing_s/generate_sequences": time.perf_counter() - start_time}
    return DataProto.from_dict(tensors=batch, non_tensors=dict(prompts.non_tensor_batch), meta_info={"metrics": metrics})
