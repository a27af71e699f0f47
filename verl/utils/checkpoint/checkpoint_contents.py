"""What a checkpoint saves and loads: verl's ``checkpoint`` section of the actor / critic config.

Entries: ``model`` (sharded weights), ``optimizer`` (sharded optimizer state), ``extra`` (lr scheduler, RNG, step),
``hf_model`` (full HF-format weights in ``huggingface/``; without it that folder holds only the config, generation
config and tokenizer, and ``python -m verl.model_merger`` builds the weights from the shards later).

Keys, as in verl: ``save_contents`` and ``load_contents`` (verl >= 0.4), or the older ``contents`` (both at once;
it wins when set, so old command lines keep their meaning).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

CONTENT_ENTRIES = ("model", "optimizer", "extra", "hf_model")
VERL_DEFAULT_CONTENTS = ("model", "optimizer", "extra")


def _as_list(value, key: str) -> list[str]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ValueError(f"{key}={value!r} must be a list of entries from {list(CONTENT_ENTRIES)}")
    entries = [str(v) for v in value]
    unknown = [e for e in entries if e not in CONTENT_ENTRIES]
    if unknown:
        raise ValueError(f"{key}={entries} has unknown entries {unknown}; use some of {list(CONTENT_ENTRIES)}")
    return entries


def resolve_checkpoint_contents(section: Optional[Mapping], where: str = "checkpoint") -> tuple[list[str], list[str]]:
    """(save_contents, load_contents) from a verl ``checkpoint`` section.

    ``section``: a mapping with ``save_contents`` / ``load_contents`` and/or the legacy ``contents``; None or empty
    gives verl's default (model, optimizer, extra: no HF weights). ``where`` prefixes the keys in error messages
    (e.g. "actor_rollout_ref.actor.checkpoint"). Raises ValueError naming the key for an unknown entry.
    """
    section = section or {}
    legacy = section.get("contents", None)
    if legacy is not None:
        contents = _as_list(legacy, f"{where}.contents")
        return contents, list(contents)
    save = section.get("save_contents", None)
    save = _as_list(save, f"{where}.save_contents") if save is not None else list(VERL_DEFAULT_CONTENTS)
    load = section.get("load_contents", None)
    load = _as_list(load, f"{where}.load_contents") if load is not None else list(save)
    return save, load


def checkpoint_contents_errors(section: Optional[Mapping], where: str) -> list[str]:
    """The ValueError of ``resolve_checkpoint_contents`` as a list of messages (empty when the section is fine)."""
    try:
        resolve_checkpoint_contents(section, where)
    except ValueError as e:
        return [str(e)]
    return []
