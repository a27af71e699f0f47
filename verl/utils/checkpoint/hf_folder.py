"""Write an HF-format model folder (config, safetensors weights, generation config, tokenizer) from a full state dict.

Shared by the checkpoint manager (``huggingface/`` next to the shards) and ``python -m verl.model_merger`` (the same
folder built later from the shards), so both write identical files.
"""
from __future__ import annotations

import copy

import torch

from verl.utils.fsdp_utils import drop_tied_output_embeddings


def export_config(config, architecture: str, dtype: torch.dtype):
    """A copy of an HF ``config`` naming ``architecture`` (the class that loads the weights, e.g. a critic's
    ``Qwen2ForTokenClassification`` rather than the base checkpoint's ``Qwen2ForCausalLM``) and the ``dtype`` the
    weights are written in, with the KV cache on again (training turns it off; a served or evaluated model wants it).
    The caller's config is left untouched."""
    config = copy.deepcopy(config)
    config.architectures = [architecture]
    config.dtype = dtype
    config.use_cache = True
    return config


def cast_floating(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``state`` with every floating-point tensor in ``dtype`` (integer buffers keep theirs)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def write_hf_weights(hf_dir: str, model_class: type, config, state: dict[str, torch.Tensor]) -> None:
    """Write ``state`` (full tensors, any float dtype) as safetensors in ``config.dtype`` to ``hf_dir``, plus config.json.

    An empty (meta) instance of ``model_class`` applies HF's own naming, tied-weight and sharding rules without
    allocating a second copy of the model. The output embedding is left out when the config ties it to the input
    embedding (ValueError if the two differ: the tie was broken in training).
    """
    dtype = config.dtype if isinstance(config.dtype, torch.dtype) else getattr(torch, str(config.dtype))
    with torch.device("meta"):
        shell = model_class._from_config(copy.deepcopy(config), dtype=dtype)
    state = cast_floating(drop_tied_output_embeddings(shell, state), dtype)
    shell.save_pretrained(hf_dir, state_dict=state, safe_serialization=True)


def write_hf_metadata(hf_dir: str, config, generation_config=None, tokenizer=None) -> None:
    """Write config.json, generation_config.json (when given) and the tokenizer files (when given) to ``hf_dir``:
    the small part of an HF folder, enough for ``verl.model_merger`` to add the weights later."""
    config.save_pretrained(hf_dir)
    if generation_config is not None:
        generation_config.save_pretrained(hf_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(hf_dir)


def hf_model_class(config) -> type:
    """The transformers class named by ``config.architectures[0]`` (ValueError naming it when unknown)."""
    import transformers

    names = list(getattr(config, "architectures", None) or [])
    if not names:
        raise ValueError("config.json has no 'architectures' entry: cannot tell which model class the weights belong to")
    cls = getattr(transformers, names[0], None)
    if cls is None:
        raise ValueError(f"config.json names architecture {names[0]!r}, which transformers does not provide")
    return cls
