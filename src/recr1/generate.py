"""Answer prompts with a checkpoint exactly as the training rollout would: evaluation's generation.

Evaluation must score the policy that training optimised, so nothing here samples on its own: prompts are encoded
by the training dataset's ``encode_prompts`` (chat template + generation prompt), generation runs through the
rollout engines themselves (``HFRollout``'s sampling loop, or ``vLLMRollout`` with its SamplingParams, stop ids and
engine arguments), every EOS id of the model stops a response (``model_eos_token_ids``), and responses are decoded
as the reward manager decodes them. In particular the checkpoint's ``generation_config.json`` sampling defaults
(Qwen2.5-Instruct: repetition_penalty 1.05, top_k 20, top_p 0.8) are NOT applied, as the rollout does not apply
them; greedy means argmax.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from tqdm import tqdm

ENGINES = ("hf", "vllm")


@dataclass(frozen=True)
class Sampling:
    """The rollout's sampling keys (``actor_rollout_ref.rollout.{do_sample,temperature,top_k,top_p}``); greedy by
    default, like ``rollout.val_kwargs``. ``top_k`` <= 0 and ``top_p`` 1 disable those filters."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0

    def __post_init__(self):
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"sampling: temperature={self.temperature} must be > 0 when do_sample is set")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"sampling: top_p={self.top_p} must be in (0, 1]")


@dataclass
class Generations:
    """Responses in prompt order: ``texts`` (special tokens removed, as the reward sees them) and ``token_ids``
    (through the first EOS, which is kept, exactly the tokens the rollout's response_mask marks)."""

    texts: list[str]
    token_ids: list[list[int]]


def _rollout_config(sampling: Sampling, response_length: int, **extra):
    from omegaconf import OmegaConf

    return OmegaConf.create({**asdict(sampling), "response_length": int(response_length), **extra})


def _hf_rollout(model_path: str, sampling: Sampling, response_length: int, device: str):
    from transformers import AutoModelForCausalLM

    from verl.workers.rollout.hf_rollout import HFRollout

    # the dtype the HF rollout computes in by default (fsdp_utils.mixed_precision_policy: fp32 on CPU, bf16 on GPU)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, attn_implementation="sdpa")
    return HFRollout(model.to(device).eval(), _rollout_config(sampling, response_length))


def _vllm_rollout(model_path: str, sampling: Sampling, response_length: int, prompt_length: int, device: str,
                  engine_kwargs: Optional[dict]):
    from verl.workers.rollout.vllm_rollout import vLLMRollout  # first: it sets vLLM's environment

    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise ImportError("--engine vllm needs vLLM installed (pip install vllm)") from exc

    config = _rollout_config(
        sampling, response_length, prompt_length=prompt_length, load_format="auto",
        dtype="float32" if device == "cpu" else "bfloat16", gpu_memory_utilization=0.85, free_cache_engine=False,
        engine_kwargs=dict(engine_kwargs or {}),
    )  # fmt: skip
    return vLLMRollout(model_path, config, device=device)


def _prompt_batch(prompt_ids: list, pad_token_id: int):
    """Left-padded DataProto (input_ids / attention_mask / position_ids [B, P], P = longest prompt), as the training
    dataset pads its prompts."""
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import left_pad

    length = max(len(ids) for ids in prompt_ids)
    rows = [left_pad(ids, length, pad_token_id) for ids in prompt_ids]
    tensors = {key: torch.stack([row[k] for row in rows]) for k, key in enumerate(("input_ids", "attention_mask",
                                                                                   "position_ids"))}
    return DataProto.from_dict(tensors=tensors)


def generate(
    model_path: str,
    prompts: Sequence,
    engine: str = "hf",
    max_new_tokens: int = 512,
    batch_size: int = 16,
    device: Optional[str] = None,
    sampling: Optional[Sampling] = None,
    engine_kwargs: Optional[dict] = None,
) -> Generations:
    """One response per prompt (chat messages or a plain string), generated as the training rollout generates.

    Args:
        model_path: an HF folder (e.g. a checkpoint's ``actor/huggingface``) or hub id.
        engine: "hf" (the HF rollout's loop on a plain module) or "vllm" (the vLLM rollout, weights from the folder).
        max_new_tokens: the response length R.
        batch_size: prompts per ``generate_sequences`` call (hf; vLLM gets them all at once and batches itself).
        device: "cuda" or "cpu"; default cuda when available.
        sampling: default greedy.
        engine_kwargs: extra ``vllm.LLM`` arguments (vllm only).
    """
    from verl.utils.dataset.rl_dataset import encode_prompts
    from verl.utils.generation_config import model_eos_token_ids
    from verl.workers.reward_manager.base import decode_responses
    from verl.workers.sharding import load_tokenizer

    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not one of {list(ENGINES)}")
    if not prompts:
        return Generations([], [])
    sampling = sampling or Sampling()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = os.path.expanduser(model_path)
    model_path = path if os.path.exists(path) else model_path
    tokenizer = load_tokenizer(model_path)
    prompt_ids = encode_prompts(list(prompts), tokenizer, model_path)
    meta = {"eos_token_id": model_eos_token_ids(model_path, tokenizer), "pad_token_id": tokenizer.pad_token_id}
    if engine == "vllm":
        longest = max(len(ids) for ids in prompt_ids)
        rollout = _vllm_rollout(model_path, sampling, max_new_tokens, longest, device, engine_kwargs)
    else:
        rollout = _hf_rollout(model_path, sampling, max_new_tokens, device)

    order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))  # similar lengths share a batch
    # vLLM schedules its own batches (max_num_seqs): one call with every prompt
    step = batch_size if engine == "hf" else len(order)
    texts: list[str] = [""] * len(order)
    token_ids: list[list[int]] = [[] for _ in order]
    for start in tqdm(range(0, len(order), step), desc="generating", unit="batch"):
        rows = order[start : start + step]
        batch = _prompt_batch([prompt_ids[i] for i in rows], tokenizer.pad_token_id)
        batch.meta_info.update(meta)
        out = rollout.generate_sequences(batch)
        decoded, lengths = decode_responses(out, tokenizer)
        for row, text, response, n in zip(rows, decoded, out.batch["responses"], lengths.tolist()):
            texts[row] = text
            token_ids[row] = response[:n].tolist()
    return Generations(texts, token_ids)
