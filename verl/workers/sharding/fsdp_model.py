"""Load an HF model from ``model.path`` and shard it with FSDP2 for the actor, reference or critic role
(on one rank without offload or mixed precision: the plain module, see ``fsdp2_is_needed``)."""
from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Optional

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

from torch.distributed.fsdp import CPUOffloadPolicy

from verl.utils.fsdp_utils import apply_fsdp2, mixed_precision_policy, offload_policy
from verl.utils.import_utils import import_external_libs

from .lora import apply_lora, lora_rank


def load_tokenizer(path: str, trust_remote_code: bool = False, external_lib=None,
                   external_lib_key: str = "model.external_lib"):
    """``AutoTokenizer.from_pretrained(path)`` with a pad token (eos when the tokenizer has none), after importing
    ``external_lib`` (it may register a tokenizer class; errors name ``external_lib_key``)."""
    from transformers import AutoTokenizer

    import_external_libs(external_lib, external_lib_key)
    _check_path(path, "model.path / tokenizer_path")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_path(path: Optional[str], key: str) -> None:
    if not path:
        raise ValueError(f"{key} is not set")
    # "org/name" may be a model hub id; anything that looks like a filesystem path must exist
    if path.startswith(("/", ".", "~")) and not os.path.isdir(os.path.expanduser(path)):
        raise FileNotFoundError(f"{key}={path!r}: no such directory")


def attn_implementation(device: str, use_remove_padding: bool) -> str:
    """flash_attention_2 for packed (remove-padding) sequences on GPU when flash-attn is installed; sdpa otherwise.

    sdpa keeps packed sequences apart too (a block-diagonal mask built from the position ids), so results are the
    same, but that mask is quadratic in the packed length: on CPU, or on GPU without flash-attn, packing is
    correct but usually slower than padding (measured on the tiny model: ~2x slower log-prob / update on CPU).
    """
    if use_remove_padding:
        if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        warnings.warn(
            f"use_remove_padding=True on {device} without flash-attn: packed sequences run through sdpa with a "
            "dense block mask (same results, usually slower than padding)",
            stacklevel=2,
        )
    return "sdpa"


def load_hf_config(model_config, **overrides):
    """``AutoConfig`` of ``model.path`` updated with ``model.override_config`` and ``overrides``.

    ``model.external_lib`` is imported first (every model load goes through here), so a module that registers a
    custom architecture with transformers' Auto classes takes effect before the config and weights are read.
    """
    from transformers import AutoConfig

    import_external_libs(model_config.get("external_lib", None), "model.external_lib")
    path = model_config.get("path", None)
    _check_path(path, "model.path")
    config = AutoConfig.from_pretrained(path, trust_remote_code=bool(model_config.get("trust_remote_code", False)))
    override = model_config.get("override_config", None) or {}
    for key, value in {**dict(override), **overrides}.items():
        setattr(config, key, value)
    return config


def model_dtype(fsdp_config, device: str, trainable: bool) -> torch.dtype:
    """The dtype a model's weights are loaded and kept in.

    Trainable: fp32 master weights (the optimizer updates them; in bf16 small updates would round away). Frozen
    (reference, rollout-only): the compute dtype, ``fsdp_config.mixed_precision.param_dtype`` (bf16 on cuda, fp32 on
    cpu by default): no cast at each forward, half the memory in bf16, and the very bf16 weights the actor computes
    with, so before the first update reference and actor log-probs agree exactly.
    """
    return torch.float32 if trainable else mixed_precision_policy(fsdp_config, device).param_dtype


def fsdp2_is_needed(mesh: DeviceMesh, fsdp_config, device: str, module_dtype: torch.dtype) -> bool:
    """Whether FSDP2 does anything for a module on ``mesh``: sharding (more than one rank), CPU offload, or mixed
    precision (compute dtype other than the stored one, e.g. bf16 compute over fp32 master weights on GPU).

    On a single rank without either, FSDP2 is pure overhead: hooks around every forward (each decoded token
    included), DTensor dispatch in the optimizer and gradient clipping (~8% of a GRPO step on CPU). The plain
    module computes the same thing and saves checkpoints that load into either form (FSDPCheckpointManager).
    """
    if mesh.size() > 1 or isinstance(offload_policy(fsdp_config, device), CPUOffloadPolicy):
        return True
    return mixed_precision_policy(fsdp_config, device).param_dtype not in (None, module_dtype)


def _shard(module: nn.Module, fsdp_config, mesh: DeviceMesh, device: str, gradient_checkpointing: bool,
           force_fsdp2: bool = False) -> nn.Module:
    if gradient_checkpointing:
        # non-reentrant checkpointing is the kind that composes with FSDP2's hooks
        if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5.x
            module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module.config.use_cache = False
    module_dtype = next(module.parameters()).dtype
    if not force_fsdp2 and not fsdp2_is_needed(mesh, fsdp_config, device, module_dtype):
        return module.to(device)
    return apply_fsdp2(
        module,
        mesh,
        mixed_precision_policy(fsdp_config, device),
        offload_policy(fsdp_config, device),
        reshard_after_forward=bool((fsdp_config or {}).get("reshard_after_forward", True)),
    )


def build_fsdp_causal_lm(
    model_config,
    fsdp_config,
    mesh: DeviceMesh,
    device: str,
    trainable: bool = True,
    dtype: Optional[torch.dtype] = None,
    force_fsdp2: bool = False,
) -> nn.Module:
    """The causal LM at ``model.path``, sharded with FSDP2 (a plain module where FSDP2 would do nothing: one rank,
    no offload, no mixed precision; ``force_fsdp2`` wraps it anyway).

    Trainable (actor): fp32 master weights, gradient checkpointing when ``model.enable_gradient_checkpointing``.
    Frozen (reference, rollout-only): weights in the compute dtype, no gradients. ``dtype`` overrides
    ``model_dtype(fsdp_config, device, trainable)``. A trainable model with ``model.lora_rank`` > 0 becomes a peft
    model (``lora.apply_lora``, before sharding): its frozen base is loaded in the compute dtype, like a reference,
    and only its fp32 adapters train.
    """
    from transformers import AutoModelForCausalLM

    lora = trainable and lora_rank(model_config) > 0
    if dtype is None:
        dtype = model_dtype(fsdp_config, device, trainable and not lora)
    config = load_hf_config(model_config)
    module = AutoModelForCausalLM.from_pretrained(
        model_config.path,
        config=config,
        dtype=dtype,
        attn_implementation=attn_implementation(device, bool(model_config.get("use_remove_padding", False))),
        trust_remote_code=bool(model_config.get("trust_remote_code", False)),
    )
    if not trainable:
        module.requires_grad_(False)
    if lora:
        module = apply_lora(module, model_config)
    grad_ckpt = trainable and bool(model_config.get("enable_gradient_checkpointing", False))
    return _shard(module, fsdp_config, mesh, device, grad_ckpt, force_fsdp2)


def build_fsdp_value_model(model_config, fsdp_config, mesh: DeviceMesh, device: str, force_fsdp2: bool = False) -> nn.Module:
    """A value model: the backbone at ``model.path`` with a fresh scalar head (token classification, one label,
    no dropout), fp32 master weights, sharded with FSDP2 (plain where FSDP2 would do nothing, as for the LM)."""
    from transformers import AutoModelForTokenClassification

    config = load_hf_config(model_config, num_labels=1, classifier_dropout=0.0)
    module = AutoModelForTokenClassification.from_pretrained(
        model_config.path,
        config=config,
        dtype=torch.float32,
        attn_implementation=attn_implementation(device, bool(model_config.get("use_remove_padding", False))),
        trust_remote_code=bool(model_config.get("trust_remote_code", False)),
    )
    grad_ckpt = bool(model_config.get("enable_gradient_checkpointing", False))
    return _shard(module, fsdp_config, mesh, device, grad_ckpt, force_fsdp2)
