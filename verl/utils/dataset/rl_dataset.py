"""Parquet prompts -> left-padded token tensors for the rollout (verl's RLHFDataset).

A row follows verl's schema: ``data_source``, ``prompt`` (a list of chat messages, rendered with the
tokenizer's chat template and the generation prompt; a plain string is used as-is), ``reward_model``
(``{"ground_truth": ...}``), ``extra_info``, and any other columns (carried through as non-tensors).
All prompts are tokenized once at load time, so a too-long prompt is found (and reported, filtered or
truncated) before training starts, not at step 5000.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, ListConfig

logger = logging.getLogger(__name__)

TRUNCATIONS = ("error", "left", "right", "middle")


def read_parquet_files(files: str | Sequence[str]) -> pd.DataFrame:
    """Concatenate one or several parquet files; FileNotFoundError naming a missing one."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    frames = []
    for f in files:
        path = os.path.expanduser(str(f))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"parquet file not found: {path!r}")
        frames.append(pd.read_parquet(path))
    if not frames:
        raise ValueError("no parquet files given")
    return pd.concat(frames, ignore_index=True)


def to_plain(value: Any) -> Any:
    """Parquet nested values come back as numpy arrays of dicts; make them plain lists/dicts."""
    if isinstance(value, np.ndarray):
        return [to_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def render_prompt(prompt: Any, tokenizer, where: str) -> str:
    """Chat messages -> the chat template text with the generation prompt; a string stays as it is."""
    if isinstance(prompt, str):
        return prompt
    messages = to_plain(prompt)
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in messages):
        raise ValueError(f"{where}: the prompt must be a list of {{'role', 'content'}} messages or a string, "
                         f"got {str(prompt)[:200]!r}")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{where}: the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                         f"give prompts as plain strings instead")
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode_prompts(prompts: Sequence[Any], tokenizer, where: str) -> list[np.ndarray]:
    """Token ids of each prompt (chat messages rendered by ``render_prompt``, no extra special tokens): how training
    sees a prompt, so anything that must prompt the policy the same way (evaluation) encodes through here."""
    texts = [render_prompt(prompt, tokenizer, f"{where} row {i}") for i, prompt in enumerate(prompts)]
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [np.asarray(ids, dtype=np.int64) for ids in encoded]


def truncate_ids(ids: np.ndarray, max_length: int, side: str) -> np.ndarray:
    """Keep ``max_length`` tokens: the end (left), the start (right), or both ends (middle)."""
    if len(ids) <= max_length:
        return ids
    if side == "left":
        return ids[-max_length:]
    if side == "right":
        return ids[:max_length]
    if side == "middle":
        head = max_length // 2
        return np.concatenate([ids[:head], ids[len(ids) - (max_length - head):]])
    raise ValueError(f"data.truncation={side!r} is not one of {', '.join(TRUNCATIONS)}")


def left_pad(ids: np.ndarray, length: int, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [length], attention_mask [length], position_ids [length]), padded on the left."""
    n = len(ids)
    input_ids = torch.full((length,), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(length, dtype=torch.long)
    input_ids[length - n:] = torch.as_tensor(ids, dtype=torch.long)
    attention_mask[length - n:] = 1
    position_ids = torch.clamp(torch.cumsum(attention_mask, dim=0) - 1, min=0)
    return input_ids, attention_mask, position_ids


class RLHFDataset(torch.utils.data.Dataset):
    """Prompts from parquet, tokenized and left-padded to ``data.max_prompt_length``.

    Args:
        data_files: parquet path(s).
        tokenizer: a HF tokenizer (chat template for message prompts; pad token, else eos, for padding).
        config: the ``data`` section: prompt_key, max_prompt_length, truncation (error|left|right|middle),
            filter_overlong_prompts, return_raw_chat, return_raw_input_ids.

    Item: input_ids, attention_mask, position_ids [max_prompt_length] (left-padded); every other column as a
    plain Python value; ``index`` (extra_info.index, else the row number); ``raw_prompt_ids`` and
    ``raw_prompt`` when asked for.
    """

    def __init__(self, data_files: str | Sequence[str], tokenizer, config: DictConfig | dict, processor=None):
        if isinstance(data_files, ListConfig):
            data_files = list(data_files)
        self.data_files = [data_files] if isinstance(data_files, (str, os.PathLike)) else list(data_files)
        self.tokenizer = tokenizer
        get = config.get
        self.prompt_key = get("prompt_key", "prompt")
        self.max_prompt_length = int(get("max_prompt_length", 1024))
        self.truncation = get("truncation", "error")
        self.filter_overlong_prompts = bool(get("filter_overlong_prompts", False))
        self.return_raw_chat = bool(get("return_raw_chat", False))
        self.return_raw_input_ids = bool(get("return_raw_input_ids", False))
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"data.truncation={self.truncation!r} is not one of {', '.join(TRUNCATIONS)}")
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        frame = read_parquet_files(self.data_files)
        if self.prompt_key not in frame.columns:
            raise KeyError(f"data.prompt_key={self.prompt_key!r} is not a column of {self.data_files}; "
                           f"columns: {list(frame.columns)}")
        self.rows = frame.to_dict(orient="records")
        self.prompt_ids = encode_prompts([r[self.prompt_key] for r in self.rows], tokenizer, str(self.data_files))
        self._apply_length_policy()

    def _apply_length_policy(self) -> None:
        limit = self.max_prompt_length
        too_long = [i for i, ids in enumerate(self.prompt_ids) if len(ids) > limit]
        if not too_long:
            return
        longest = max(len(self.prompt_ids[i]) for i in too_long)
        shown = ", ".join(map(str, too_long[:10])) + (", ..." if len(too_long) > 10 else "")
        what = (f"{len(too_long)} of {len(self.rows)} prompts in {self.data_files} are longer than "
                f"data.max_prompt_length={limit} tokens (rows {shown}; longest {longest})")
        if self.filter_overlong_prompts:
            keep = sorted(set(range(len(self.rows))) - set(too_long))
            self.rows = [self.rows[i] for i in keep]
            self.prompt_ids = [self.prompt_ids[i] for i in keep]
            logger.warning("%s: dropped them (data.filter_overlong_prompts=True); %d remain", what, len(self.rows))
            print(f"[RLHFDataset] {what}: dropped them; {len(self.rows)} remain", flush=True)
            if not self.rows:
                raise ValueError(f"{what}: every prompt was filtered out")
        elif self.truncation == "error":
            raise ValueError(f"{what}. Set data.filter_overlong_prompts=True, data.truncation=left|right|middle, "
                             f"or a larger data.max_prompt_length")
        else:
            self.prompt_ids = [truncate_ids(ids, limit, self.truncation) for ids in self.prompt_ids]
            print(f"[RLHFDataset] {what}: truncated ({self.truncation})", flush=True)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = {k: to_plain(v) for k, v in self.rows[i].items()}
        ids = self.prompt_ids[i]
        input_ids, attention_mask, position_ids = left_pad(ids, self.max_prompt_length, self.pad_token_id)
        item = {k: v for k, v in row.items() if k != self.prompt_key}
        item.update(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        if self.return_raw_chat:
            item["raw_prompt"] = row[self.prompt_key]
        if self.return_raw_input_ids:
            item["raw_prompt_ids"] = ids.tolist()
        extra = row.get("extra_info")
        item["index"] = extra.get("index", i) if isinstance(extra, dict) else i
        return item


def collate_fn(items: list[dict]) -> dict:
    """Stack tensors; every other field becomes a numpy object array (one entry per item)."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            out[key] = arr
    return out
