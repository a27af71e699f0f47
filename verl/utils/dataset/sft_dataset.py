"""Parquet prompt/response pairs -> right-padded tensors with a loss mask on the response (verl's SFTDataset)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig

from verl.utils.dataset.rl_dataset import read_parquet_files, render_prompt, to_plain, truncate_ids


def _column(frame, key: str, dict_keys, files) -> list:
    if key not in frame.columns:
        raise KeyError(f"column {key!r} not in {files}; columns: {list(frame.columns)}")
    values = [to_plain(v) for v in frame[key].tolist()]
    for sub in dict_keys or []:
        values = [v[sub] if isinstance(v, dict) else v for v in values]
    return values


class SFTDataset(torch.utils.data.Dataset):
    """Supervised pairs: the prompt (chat messages rendered with the template and the generation prompt, or a
    plain string treated as one user message) followed by the response and EOS.

    Args:
        parquet_files: path(s).
        tokenizer: a HF tokenizer with a chat template.
        config: the ``data`` section of sft_trainer.yaml: prompt_key, response_key, prompt_dict_keys,
            response_dict_keys, max_length, truncation (error|left|right).

    Item: input_ids, attention_mask, position_ids, loss_mask, all [max_length], right-padded; loss_mask is 1 on
    response tokens (EOS included), so the loss covers the response only.
    """

    def __init__(self, parquet_files: str | Sequence[str], tokenizer, config: DictConfig | dict):
        if isinstance(parquet_files, ListConfig):
            parquet_files = list(parquet_files)
        self.files = parquet_files
        self.tokenizer = tokenizer
        self.max_length = int(config.get("max_length", 1024))
        self.truncation = config.get("truncation", "error")
        if self.truncation not in ("error", "left", "right"):
            raise ValueError(f"data.truncation={self.truncation!r} must be error, left or right for SFT")
        frame = read_parquet_files(parquet_files)
        prompts = _column(frame, config.get("prompt_key", "prompt"), config.get("prompt_dict_keys"), parquet_files)
        responses = _column(frame, config.get("response_key", "response"), config.get("response_dict_keys"),
                            parquet_files)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = tokenizer.eos_token or ""
        prompt_texts = [render_prompt([{"role": "user", "content": p}] if isinstance(p, str) else p, tokenizer,
                                      f"{parquet_files} row {i}") for i, p in enumerate(prompts)]
        prompt_ids = tokenizer(prompt_texts, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer([str(r) + eos for r in responses], add_special_tokens=False)["input_ids"]
        self.examples = []
        for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
            ids = np.asarray(p + r, dtype=np.int64)
            mask = np.asarray([0] * len(p) + [1] * len(r), dtype=np.int64)
            if len(ids) > self.max_length:
                if self.truncation == "error":
                    raise ValueError(f"{parquet_files} row {i}: prompt + response is {len(ids)} tokens > "
                                     f"data.max_length={self.max_length}; set data.truncation=left|right")
                ids = truncate_ids(ids, self.max_length, self.truncation)
                mask = truncate_ids(mask, self.max_length, self.truncation)
            self.examples.append((ids, mask))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids, mask = self.examples[i]
        n, length = len(ids), self.max_length
        input_ids = torch.full((length,), self.pad_token_id, dtype=torch.long)
        input_ids[:n] = torch.as_tensor(ids)
        attention_mask = torch.zeros(length, dtype=torch.long)
        attention_mask[:n] = 1
        loss_mask = torch.zeros(length, dtype=torch.long)
        loss_mask[:n] = torch.as_tensor(mask)
        position_ids = torch.clamp(torch.cumsum(attention_mask, 0) - 1, min=0)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
                "loss_mask": loss_mask}
