"""LoRA adapters (peft) on the actor, from verl's keys ``actor_rollout_ref.model.{lora_rank, lora_alpha,
target_modules, exclude_modules}``.

``lora_rank`` 0 turns LoRA off. With LoRA the base weights are frozen and kept in the compute dtype (bf16 on GPU:
half the bytes of the fp32 master copy a fully trained actor keeps), only the adapters (fp32) are trainable, and the
reference policy is the same module with its adapters switched off (``adapters_disabled``): no second copy of the
model. peft is applied BEFORE FSDP2's ``fully_shard``, so each decoder layer's FSDP unit holds frozen base weights
and trainable adapters side by side; FSDP2 shards both and reduces gradients only for the adapters.
"""
from __future__ import annotations

import contextlib
import re
from typing import Iterator, Optional

from torch import nn

from verl.utils.checkpoint.lora_weights import is_peft_model

ALL_LINEAR = "all-linear"
WHERE = "actor_rollout_ref.model"


def lora_rank(model_config) -> int:
    """``model.lora_rank`` as an int (0 when absent or null: LoRA off)."""
    return int((model_config or {}).get("lora_rank", 0) or 0)


def _names(value) -> Optional[list]:
    if value is None or isinstance(value, str):
        return None
    return list(value) if hasattr(value, "__iter__") else None


def lora_config_errors(model_config, where: str = WHERE) -> list[str]:
    """Problems with the LoRA keys of a ``model`` section that need no model to see (empty when fine or LoRA is off):
    rank not a non-negative int, alpha not positive, target_modules / exclude_modules neither a string nor a
    non-empty list of names."""
    model_config = model_config or {}
    rank = model_config.get("lora_rank", 0)
    if rank is None:
        rank = 0
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        return [f"{where}.lora_rank={rank!r} must be an integer >= 0 (0: no LoRA)"]
    if rank == 0:
        return []
    errors = []
    alpha = model_config.get("lora_alpha", 16)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        errors.append(f"{where}.lora_alpha={alpha!r} must be a positive number (the adapter scale is alpha / rank)")
    targets = model_config.get("target_modules", ALL_LINEAR)
    listed = _names(targets)
    if not isinstance(targets, str) and (listed is None or not listed or not all(isinstance(t, str) for t in listed)):
        errors.append(f"{where}.target_modules={targets!r} must be '{ALL_LINEAR}', a regular expression, or a "
                      f"non-empty list of module names (e.g. [q_proj, k_proj, v_proj, o_proj])")
    excluded = model_config.get("exclude_modules", None)
    listed = _names(excluded)
    if excluded is not None and not isinstance(excluded, str) and (
            listed is None or not all(isinstance(t, str) for t in listed)):
        errors.append(f"{where}.exclude_modules={excluded!r} must be null, a regular expression or a list of names")
    return errors


def _linear_names(model: nn.Module) -> list[str]:
    """Full names of the model's ``nn.Linear`` modules (the only kind LoRA adapts here)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def _matches(full_name: str, target: str) -> bool:
    # peft's rule for a list entry: the whole name, or its last dotted components
    return full_name == target or full_name.endswith("." + target)


def lora_target_errors(model: nn.Module, model_config, where: str = WHERE) -> list[str]:
    """Names in ``target_modules`` that match no linear layer of ``model`` and names in ``exclude_modules`` that match
    no module at all (a regular expression that matches nothing counts too), each listed with the model's linear
    layer names. ``model`` may live on the meta device (``model_on_meta``)."""
    linear_names = _linear_names(model)
    candidates = {"target_modules": linear_names, "exclude_modules": [name for name, _ in model.named_modules()]}
    linear = sorted({name.rsplit(".", 1)[-1] for name in linear_names})
    kind = {"target_modules": "linear layer", "exclude_modules": "module"}
    errors = []
    for key, default in (("target_modules", ALL_LINEAR), ("exclude_modules", None)):
        value, names = model_config.get(key, default), candidates[key]
        if value is None or value == ALL_LINEAR:
            continue
        if isinstance(value, str):
            if not any(re.fullmatch(value, name) for name in names):
                errors.append(f"{where}.{key}={value!r} (a regular expression) matches no {kind[key]} of "
                              f"{type(model).__name__}; its linear layers: {linear}")
            continue
        unknown = [t for t in _names(value) if not any(_matches(name, t) for name in names)]
        if unknown:
            errors.append(f"{where}.{key} names {unknown}, which match no {kind[key]} of {type(model).__name__}; "
                          f"its linear layers: {linear}")
    return errors


def model_on_meta(model_config) -> nn.Module:
    """The causal LM of ``model.path`` built from its config on the meta device (no weights read, no memory), to
    check module names before any worker starts."""
    import torch
    from transformers import AutoModelForCausalLM

    from .fsdp_model import load_hf_config

    config = load_hf_config(model_config)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=bool(model_config.get("trust_remote_code",
                                                                                                 False)))


def build_lora_config(model_config):
    """peft's ``LoraConfig`` from the model section: rank, alpha, targets, exclusions; no dropout (the actor's
    log-probs must be deterministic: the same batch scores the same in the old-log-prob pass and in the update),
    no bias training, peft's default init (B = 0: the adapted model starts exactly as the base)."""
    from peft import LoraConfig

    errors = lora_config_errors(model_config)
    if errors:
        raise ValueError("; ".join(errors))
    targets = model_config.get("target_modules", ALL_LINEAR)
    excluded = model_config.get("exclude_modules", None)
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=lora_rank(model_config),
        lora_alpha=model_config.get("lora_alpha", 16),
        target_modules=targets if isinstance(targets, str) else [str(t) for t in targets],
        exclude_modules=excluded if excluded is None or isinstance(excluded, str) else [str(t) for t in excluded],
        lora_dropout=0.0,
        bias="none",
    )


def apply_lora(module: nn.Module, model_config, init_seed: int = 0) -> nn.Module:
    """Wrap an HF causal LM with LoRA adapters (a peft ``PeftModel``): base weights frozen, adapters trainable and
    fp32. Raises ValueError naming target / exclude names that match no module of the model.

    A is drawn at random (B starts at 0) from a generator seeded with ``init_seed``, apart from the global RNG: every
    rank must start from the same adapters, since FSDP2 keeps each rank's own slice of what that rank initialised.
    """
    import torch
    from peft import get_peft_model

    errors = lora_target_errors(module, model_config)
    if errors:
        raise ValueError("; ".join(errors))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        peft_model = get_peft_model(module, build_lora_config(model_config), autocast_adapter_dtype=True)
    for name, param in peft_model.named_parameters():
        if param.requires_grad and not is_adapter_param(name):
            raise RuntimeError(f"apply_lora: {name} is trainable but is not a LoRA adapter weight")
    return peft_model


def is_adapter_param(name: str) -> bool:
    """True for the name of a LoRA adapter weight (``...lora_A.<adapter>.weight`` / ``lora_B``)."""
    return ".lora_A." in name or ".lora_B." in name


@contextlib.contextmanager
def adapters_disabled(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` as its base model (LoRA adapters off) inside the context; a non-peft module passes through."""
    if not is_peft_model(module):
        yield module
        return
    with module.disable_adapter():
        yield module
