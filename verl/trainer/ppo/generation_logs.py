"""What the policy wrote, as files and tables: verl's trainer.validation_data_dir, trainer.rollout_data_dir and
trainer.log_val_generations.

- Every validation writes ``<trainer.validation_data_dir>/<step>.jsonl`` and every training step, when
  ``trainer.rollout_data_dir`` is set, ``<trainer.rollout_data_dir>/<step>.jsonl``: one JSON object per sample with
  verl's columns ``input`` (the prompt), ``output`` (the response), ``score``, ``step``, plus ``data_source`` and
  every extra the scorer returned for the sample (e.g. the query it read, the rank of the target).
- ``trainer.log_val_generations`` validation samples (the same ones every time: verl's pick, sorted by input and
  shuffled with seed 42) go to wandb as a table under ``val/generations`` and to tensorboard as text.

The task can add columns that a person reads but that cost too much to compute for every sample (e.g. the titles of
the retrieved products): a custom reward function, or the module that defines it, may define
``describe_generations(rows, **reward_kwargs) -> list[dict]``. It gets the logged rows (each a dict as in the
jsonl) and returns one dict of display columns per row; verl calls it only for the rows of the table and writes the
columns into those rows of the jsonl as well. verl never imports a task (see reward_preflight for the same
protocol).
"""
from __future__ import annotations

import json
import math
import numbers
import os
from typing import Callable, Optional

import numpy as np
from omegaconf import DictConfig, ListConfig

from verl.protocol import DataProto
from verl.trainer.ppo.reward import custom_reward_target, scorer_hook

VERL_COLUMNS = ("input", "output", "score", "step")
HOOK_NAME = "describe_generations"


def to_json_value(value):
    """A JSON-safe copy of a scorer's value (numpy scalars and arrays, tuples; NaN/inf become None)."""
    if isinstance(value, np.ndarray):
        return [to_json_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return value
    return str(value)


def decode_samples(batch: DataProto, tokenizer) -> tuple[list[str], list[str]]:
    """(inputs, outputs): each row's prompt and response text without padding or special tokens (verl's dump).

    Needs batch keys prompts [B, P], responses [B, R], attention_mask [B, P+R]."""
    prompts, responses = batch.batch["prompts"], batch.batch["responses"]
    mask = batch.batch["attention_mask"].bool()
    prompt_mask, response_mask = mask[:, :prompts.shape[-1]], mask[:, prompts.shape[-1]:]
    inputs = tokenizer.batch_decode([p[m].tolist() for p, m in zip(prompts, prompt_mask)], skip_special_tokens=True)
    outputs = tokenizer.batch_decode([r[m].tolist() for r, m in zip(responses, response_mask)],
                                     skip_special_tokens=True)
    return inputs, outputs


def generation_rows(inputs: list[str], outputs: list[str], scores: list[float], step: int,
                    extras: Optional[dict[str, list]] = None, data_sources: Optional[list] = None) -> list[dict]:
    """One JSON-safe dict per sample: input, output, score, step, data_source (when given) and each scorer extra
    whose list has one value per sample."""
    n = len(inputs)
    if len(outputs) != n or len(scores) != n:
        raise ValueError(f"{n} inputs, {len(outputs)} outputs and {len(scores)} scores: one of each per sample")
    columns = {key: values for key, values in (extras or {}).items()
               if len(values) == n and key not in VERL_COLUMNS}
    rows = []
    for i in range(n):
        row = {"input": inputs[i], "output": outputs[i], "score": to_json_value(float(scores[i])), "step": int(step)}
        if data_sources is not None:
            row["data_source"] = str(data_sources[i])
        row.update({key: to_json_value(values[i]) for key, values in columns.items()})
        rows.append(row)
    return rows


def dump_generations(folder: str, step: int, rows: list[dict]) -> str:
    """Write ``rows`` to ``<folder>/<step>.jsonl`` (replacing a file of the same step); returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{int(step)}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def pick_logged_rows(inputs: list[str], count: int, seed: int = 42) -> list[int]:
    """verl's choice of the validation samples to show: sorted by input, shuffled with a fixed seed, the first
    ``count``; so every validation shows the same prompts. Returns row indices."""
    if count <= 0:
        return []
    order = sorted(range(len(inputs)), key=lambda i: inputs[i])
    np.random.RandomState(seed).shuffle(order)
    return order[:count]


def load_describe_hook(config: DictConfig) -> Optional[Callable[[list[dict]], list[dict]]]:
    """The custom reward function's ``describe_generations`` with ``reward_kwargs`` bound, or None (no custom reward
    function, or it defines none)."""
    target = custom_reward_target(config)
    if target is None:
        return None
    hook = scorer_hook(target.fn, HOOK_NAME, target.module)
    if hook is None:
        return None
    return lambda rows: hook(rows, **target.kwargs)


def describe_rows(hook: Optional[Callable], rows: list[dict]) -> tuple[list[dict], list[str]]:
    """(``rows`` with the hook's display columns added, as new dicts; the display column names in the hook's order).
    Without a hook (or rows): the rows themselves and no columns.

    Raises:
        ValueError: the hook returned something other than one dict per row.
    """
    if hook is None or not rows:
        return rows, []
    described = hook([dict(row) for row in rows])
    if not isinstance(described, (list, tuple)) or len(described) != len(rows) or \
            not all(isinstance(d, dict) for d in described):
        raise ValueError(f"{HOOK_NAME} must return one dict per row ({len(rows)} rows); got {described!r:.200}")
    columns = list(dict.fromkeys(str(k) for extra in described for k in extra))
    return [{**row, **{str(k): to_json_value(v) for k, v in extra.items()}} for row, extra in zip(rows, described)], \
        columns


def generation_log_errors(config: DictConfig) -> list[str]:
    """Problems with trainer.validation_data_dir / rollout_data_dir / log_val_generations and
    reward_model.val_core_extra_keys, naming the key."""
    errors = []
    t = config.trainer
    for key in ("validation_data_dir", "rollout_data_dir"):
        value = t.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            errors.append(f"trainer.{key}={value!r} must be a folder path, or null (off)")
    count = t.get("log_val_generations")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        errors.append(f"trainer.log_val_generations={count!r} must be a number of samples >= 0")
    keys = config.reward_model.get("val_core_extra_keys")
    if keys is not None and (not isinstance(keys, (list, ListConfig))
                             or not all(isinstance(k, str) and k for k in keys)):
        errors.append(f"reward_model.val_core_extra_keys={keys!r} must be a list of scorer extra names "
                      f"(e.g. [ndcg@10, mrr])")
    return errors
