"""The end-of-sequence ids a model was trained to stop at, read from its folder (or hub id).

Chat models often have several: Qwen2.5-Instruct ends a turn with ``<|im_end|>`` but also emits ``<|endoftext|>``,
and lists both in ``generation_config.json`` (``eos_token_id: [151645, 151643]``) while its tokenizer names only one.
Every generation path (both rollout engines, evaluation) stops at the whole list, as current verl does. Only the
EOS ids are taken from ``generation_config.json``: its sampling defaults (repetition_penalty, top_k, ...) are not
what the policy is trained with, so no generation path applies them.
"""
from __future__ import annotations

import json
import os
GENERATION_CONFIG_FILE = "generation_config.json"


def _ids(value, where: str) -> list[int]:
    """An ``eos_token_id`` value (None, an int or a list of ints) as a list of ints."""
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"{where}: eos_token_id must be a token id or a list of token ids, got {value!r}")
    return list(values)


def generation_config_eos_ids(model_path: str) -> list[int]:
    """``eos_token_id`` of the model's ``generation_config.json`` as a list ([] when the model has no such file or
    the file sets none). ``model_path`` is a folder or a hub id (read through transformers' cache)."""
    path = os.path.expanduser(model_path)
    if os.path.isdir(path):
        file = os.path.join(path, GENERATION_CONFIG_FILE)
        if not os.path.isfile(file):
            return []
        try:
            with open(file) as f:
                config = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{file}: not valid JSON ({exc.msg})") from None
        return _ids(config.get("eos_token_id"), file)
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(model_path)
    except OSError:  # a hub model without generation_config.json
        return []
    return _ids(config.eos_token_id, f"{model_path}/{GENERATION_CONFIG_FILE}")


def model_eos_token_ids(model_path: str, tokenizer=None) -> list[int]:
    """Every EOS id of a model: its generation_config's list, then the tokenizer's ``eos_token_id`` if not in it.

    Args:
        model_path: the model folder or hub id (``actor_rollout_ref.model.path``).
        tokenizer: the model's tokenizer (its ``eos_token_id`` is added), or None.
    Returns:
        a non-empty list of distinct ids, generation_config's order first (so ``[0]`` is the turn end for chat models).
    """
    ids = generation_config_eos_ids(model_path)
    if tokenizer is not None:
        ids += _ids(tokenizer.eos_token_id, f"the tokenizer of {model_path}")
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ValueError(
            f"{model_path}: no EOS token id (neither {GENERATION_CONFIG_FILE} nor the tokenizer sets eos_token_id)"
        )
    return ids
