"""Weights of a LoRA (peft) actor: merged into plain HF weights, or written as a peft adapter folder.

A peft model's parameter names look like ``base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight``
(the frozen base) and ``...q_proj.lora_A.default.weight`` / ``lora_B`` (the adapter, "default" being its name).
Merging gives the HF weight ``model.layers.0.self_attn.q_proj.weight = W + scaling * B @ A`` (scaling = alpha /
rank), so the merged model is an ordinary checkpoint that transformers and vLLM load. The merge streams: a base
weight waits only until its own A and B have passed (they follow it in registration order), so feeding it one
gathered tensor at a time (the vLLM weight sync) never holds more than one extra layer.
"""
from __future__ import annotations

import json
import os
import re
from typing import Iterable, Iterator

import torch

PEFT_PREFIX = "base_model.model."
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_LORA = re.compile(r"^(?P<prefix>.*)\.lora_(?P<which>[AB])\.(?P<adapter>[^.]+)\.weight$")


def hf_base_name(name: str) -> str:
    """The HF checkpoint name of a peft model's base parameter: prefix and ``.base_layer`` removed."""
    if name.startswith(PEFT_PREFIX):
        name = name[len(PEFT_PREFIX):]
    return name.replace(".base_layer.", ".")


def is_lora_name(name: str) -> bool:
    """True for a LoRA adapter weight's name (``...lora_A.<adapter>.weight`` or ``lora_B``)."""
    return _LORA.match(name) is not None


def merge_lora_weights(named_tensors: Iterable[tuple[str, torch.Tensor]], scaling: float,
                       adapter: str = "default") -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (HF name, tensor) with every adapted weight merged: W [out, in] + scaling * B [out, r] @ A [r, in],
    computed in fp32 and returned in W's dtype; unadapted tensors pass through under their HF names.

    ``named_tensors`` are a peft model's (name, full tensor) pairs in registration order (``named_parameters`` or a
    state dict). ValueError when an adapted layer lacks its base weight, A or B, or holds another adapter name.
    """
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in named_tensors:
        match = _LORA.match(name)
        if match is None and name.endswith(".base_layer.weight"):
            pending.setdefault(name[: -len(".base_layer.weight")], {})["W"] = tensor
            continue
        if match is None:
            yield hf_base_name(name), tensor
            continue
        if match["adapter"] != adapter:
            raise ValueError(f"{name}: adapter {match['adapter']!r}; only one adapter named {adapter!r} is merged")
        parts = pending.setdefault(match["prefix"], {})
        parts[match["which"]] = tensor
        if len(parts) == 3:
            del pending[match["prefix"]]
            base = parts["W"]
            delta = parts["B"].float() @ parts["A"].float()
            yield hf_base_name(match["prefix"] + ".weight"), (base.float() + scaling * delta).to(base.dtype)
    if pending:
        incomplete = {prefix: sorted(parts) for prefix, parts in pending.items()}
        raise ValueError(f"LoRA layers without all of base weight W, A and B: {incomplete}")


def adapter_state(named_tensors: Iterable[tuple[str, torch.Tensor]], adapter: str = "default") -> dict[str, torch.Tensor]:
    """The adapter tensors under peft's file names (``...lora_A.weight``: the adapter name dropped, as
    ``PeftModel.save_pretrained`` writes them), contiguous CPU copies."""
    state = {}
    for name, tensor in named_tensors:
        match = _LORA.match(name)
        if match is not None and match["adapter"] == adapter:
            key = name if name.startswith(PEFT_PREFIX) else PEFT_PREFIX + name
            state[key.replace(f".{adapter}.weight", ".weight")] = tensor.detach().to("cpu").contiguous()
    return state


def write_peft_adapter(adapter_dir: str, peft_config, state: dict[str, torch.Tensor]) -> None:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` (what ``PeftModel.from_pretrained(base,
    adapter_dir)`` loads) from a peft ``LoraConfig`` and ``adapter_state``'s tensors."""
    from safetensors.torch import save_file

    if not state:
        raise ValueError(f"write_peft_adapter({adapter_dir}): no adapter tensors to write")
    os.makedirs(adapter_dir, exist_ok=True)
    peft_config.save_pretrained(adapter_dir)
    save_file(state, os.path.join(adapter_dir, ADAPTER_WEIGHTS), metadata={"format": "pt"})


def read_adapter_config(adapter_dir: str) -> dict:
    """``adapter_config.json`` of an adapter folder as a dict (FileNotFoundError naming the file)."""
    path = os.path.join(adapter_dir, ADAPTER_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: not a peft adapter folder")
    with open(path) as f:
        return json.load(f)


def merge_into_hf_state(base_state: dict[str, torch.Tensor], adapters: dict[str, torch.Tensor],
                        scaling: float) -> dict[str, torch.Tensor]:
    """``base_state`` (HF names, e.g. read from the base model's folder) with each adapted weight replaced by
    W + scaling * B @ A from ``adapters`` (a peft model's adapter tensors, any of its name forms), in W's dtype.
    ValueError naming an adapter whose base weight is missing or that lacks A or B."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in adapters.items():
        match = _LORA.match(name) or re.match(r"^(?P<prefix>.*)\.lora_(?P<which>[AB])\.weight$", name)
        if match is None:
            raise ValueError(f"{name} is not a LoRA adapter weight")
        pairs.setdefault(match["prefix"], {})[match["which"]] = tensor
    merged = dict(base_state)
    for prefix, parts in pairs.items():
        key = hf_base_name(prefix + ".weight")
        if sorted(parts) != ["A", "B"]:
            raise ValueError(f"{prefix}: has lora_{sorted(parts)} only; both lora_A and lora_B are needed")
        if key not in merged:
            raise ValueError(f"{prefix}: the base model has no weight {key} to merge the adapter into")
        base = merged[key]
        merged[key] = (base.float() + scaling * (parts["B"].float() @ parts["A"].float())).to(base.dtype)
    return merged


def scaling_of(adapter_config: dict) -> float:
    """alpha / r from an adapter_config.json dict (ValueError for rsLoRA or per-module ranks, not written here)."""
    if adapter_config.get("use_rslora") or adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        raise ValueError("adapter_config.json uses rsLoRA or per-module rank/alpha patterns, which the merge here "
                         "does not implement")
    return float(adapter_config["lora_alpha"]) / float(adapter_config["r"])


def is_peft_model(module) -> bool:
    """True when ``module`` (FSDP2-wrapped or not) is a peft model (it has adapters and a base model inside)."""
    return callable(getattr(type(module), "get_base_model", None)) and hasattr(module, "peft_config")


def lora_scaling(module) -> float:
    """alpha / rank of a peft model's (single, "default") adapter: the factor of B @ A in W + scaling * B @ A."""
    config = module.peft_config["default"]
    return float(config.lora_alpha) / float(config.r)


def merge_lora_checkpoint(local_dir: str, adapters: dict[str, torch.Tensor], dtype: torch.dtype,
                          base_model_path: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(merged HF state dict, adapter_config.json dict) for a LoRA checkpoint folder whose shards hold only
    ``adapters``: the base weights come from ``base_model_path``, else from the base model that
    ``local_dir/lora_adapter/adapter_config.json`` names, loaded in ``dtype`` (the training dtype)."""
    from transformers import AutoModelForCausalLM

    adapter_config = read_adapter_config(os.path.join(local_dir, "lora_adapter"))
    base = base_model_path or adapter_config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{local_dir}/lora_adapter/{ADAPTER_CONFIG} names no base model: pass --base_model_path")
    if base.startswith(("/", ".", "~")) and not os.path.isdir(os.path.expanduser(base)):
        raise FileNotFoundError(f"base model {base} (of the LoRA adapters in {local_dir}) not found: pass "
                                f"--base_model_path")
    model = AutoModelForCausalLM.from_pretrained(os.path.expanduser(base), dtype=dtype)
    return merge_into_hf_state(model.state_dict(), adapters, scaling_of(adapter_config)), adapter_config


def write_adapter_folder(adapter_dir: str, adapters: dict[str, torch.Tensor], adapter_config: dict) -> None:
    """Write a peft adapter folder from a checkpoint's adapter tensors and its adapter_config.json dict."""
    from safetensors.torch import save_file

    os.makedirs(adapter_dir, exist_ok=True)
    save_file(adapter_state(adapters.items()), os.path.join(adapter_dir, ADAPTER_WEIGHTS), metadata={"format": "pt"})
    with open(os.path.join(adapter_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(adapter_config, f, indent=2)
