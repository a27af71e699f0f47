"""What the naive and batch reward managers share: the constructor and call flow (FunctionRewardManager), decoding,
score placement, extras, sample printing."""
from __future__ import annotations

import numbers
from collections import defaultdict
from typing import Callable

import numpy as np
import torch

from verl.protocol import DataProto
from verl.workers.reward_manager.overlong import OverlongBuffer


class RewardFunctionError(RuntimeError):
    """A scorer raised; the message names the data_source and the sample index."""


def response_valid_lengths(data: DataProto) -> torch.Tensor:
    """Tokens of each response up to and including EOS: [B] long."""
    responses = data.batch["responses"]
    if "response_mask" in data.batch.keys():
        mask = data.batch["response_mask"]
    else:
        mask = data.batch["attention_mask"][:, -responses.shape[-1]:]
    return mask.sum(dim=-1).long()


def decode_responses(data: DataProto, tokenizer) -> tuple[list[str], torch.Tensor]:
    """Decode every response in one ``batch_decode`` call.

    Returns (solution_strs: list of B strings without special tokens, valid_lengths: [B]).
    """
    responses = data.batch["responses"]
    lengths = response_valid_lengths(data)
    ids = [row[:n].tolist() for row, n in zip(responses, lengths.tolist())]
    return tokenizer.batch_decode(ids, skip_special_tokens=True), lengths


def decode_prompts(data: DataProto, tokenizer, rows: list[int]) -> list[str]:
    """Decode the (left-padded) prompts of ``rows``, for printing."""
    prompts = data.batch["prompts"]
    mask = data.batch["attention_mask"][:, : prompts.shape[-1]].bool()
    return tokenizer.batch_decode([prompts[i][mask[i]].tolist() for i in rows], skip_special_tokens=False)


def row_fields(data: DataProto, reward_fn_key: str) -> tuple[list, list, list]:
    """(data_sources, ground_truths, extra_infos), one entry per row."""
    nt = data.non_tensor_batch
    n = len(data)
    if reward_fn_key not in nt:
        raise KeyError(f"the batch has no {reward_fn_key!r} column (data.reward_fn_key); columns: {sorted(nt)}")
    sources = [str(s) for s in nt[reward_fn_key]]
    if "reward_model" not in nt:
        raise KeyError(f"the batch has no 'reward_model' column (with 'ground_truth'); columns: {sorted(nt)}")
    truths = []
    for i, rm in enumerate(nt["reward_model"]):
        if not isinstance(rm, dict) or "ground_truth" not in rm:
            raise KeyError(f"row {i} (data_source={sources[i]!r}): reward_model={rm!r} has no 'ground_truth'")
        truths.append(rm["ground_truth"])
    extras = list(nt["extra_info"]) if "extra_info" in nt else [None] * n
    return sources, truths, extras


def split_score(result, where: str) -> tuple[float, dict]:
    """A scorer returns a number or a dict with 'score' and extra keys: (score, extras)."""
    if isinstance(result, dict):
        if "score" not in result:
            raise RewardFunctionError(f"{where}: the scorer returned a dict without 'score': {sorted(result)}")
        extras = {k: v for k, v in result.items() if k != "score"}
        result = result["score"]
    else:
        extras = {}
    if isinstance(result, torch.Tensor) or isinstance(result, np.ndarray):
        result = result.item()
    if not isinstance(result, numbers.Number):
        raise RewardFunctionError(f"{where}: the scorer returned {result!r}, not a number")
    return float(result), extras


def assemble(data: DataProto, results: list, lengths: torch.Tensor, sources: list[str]):
    """Scores on each response's last valid token.

    Returns (reward_tensor: [B, R] float32, extra_info: dict key -> list of B values, None where absent).
    """
    responses = data.batch["responses"]
    reward = torch.zeros(responses.shape, dtype=torch.float32)
    extras: dict[str, list] = defaultdict(lambda: [None] * len(results))
    for i, result in enumerate(results):
        score, extra = split_score(result, f"sample {i} (data_source={sources[i]!r})")
        reward[i, max(int(lengths[i]) - 1, 0)] = score
        for key, value in extra.items():
            extras[key][i] = value
    return reward.to(responses.device), dict(extras)


class ExaminePrinter:
    """Print up to ``num_examine`` decoded samples per data_source, so a person sees what is being scored."""

    def __init__(self, tokenizer, num_examine: int):
        self.tokenizer = tokenizer
        self.num_examine = int(num_examine)

    def __call__(self, data: DataProto, sources: list[str], solutions: list[str], truths: list, results: list):
        if self.num_examine <= 0:
            return
        shown: dict[str, list[int]] = defaultdict(list)
        for i, source in enumerate(sources):
            if len(shown[source]) < self.num_examine:
                shown[source].append(i)
        rows = [i for group in shown.values() for i in group]
        prompts = decode_prompts(data, self.tokenizer, rows) if "prompts" in data.batch.keys() else [""] * len(rows)
        for i, prompt in zip(rows, prompts):
            print(f"[data_source] {sources[i]}\n[prompt] {prompt}\n[response] {solutions[i]}\n"
                  f"[ground_truth] {truths[i]}\n[score] {results[i]}", flush=True)


def output(reward: torch.Tensor, extras: dict, return_dict: bool):
    if return_dict:
        return {"reward_tensor": reward, "reward_extra_info": extras}
    return reward


class FunctionRewardManager:
    """A reward manager around a function reward; subclasses say how ``compute_score`` is called (``_score``).

    Args:
        tokenizer: decodes the responses (once, for the whole batch).
        num_examine: decoded samples to print per data_source and call.
        compute_score: the scoring function; extra keyword arguments come from ``**reward_kwargs``.
        reward_fn_key: the non-tensor column holding the data_source.
        max_resp_len, overlong_buffer_cfg: data.max_response_length and reward_model.overlong_buffer (verl's DAPO
            reward manager's arguments); when enabled, DAPO's overlong penalty is added to each score
            (see ``overlong.OverlongBuffer``).
    """

    def __init__(self, tokenizer, num_examine: int, compute_score: Callable, reward_fn_key: str = "data_source",
                 max_resp_len: int | None = None, overlong_buffer_cfg=None, **reward_kwargs):
        if compute_score is None:
            raise ValueError(f"{type(self).__name__} needs a compute_score function")
        self.tokenizer = tokenizer
        self.compute_score = compute_score
        self.reward_fn_key = reward_fn_key
        self.reward_kwargs = reward_kwargs
        self.overlong = OverlongBuffer.from_config(overlong_buffer_cfg, max_resp_len)
        self.examine = ExaminePrinter(tokenizer, num_examine)

    @property
    def scorer_name(self) -> str:
        """The scoring function's name, for error messages."""
        return getattr(self.compute_score, "__name__", self.compute_score)

    def _score(self, sources: list[str], solutions: list[str], truths: list, extras: list) -> list:
        """One result (a number, or a dict with 'score') per row; raise RewardFunctionError naming the row."""
        raise NotImplementedError

    def __call__(self, data: DataProto, return_dict: bool = False):
        """Score a batch. Returns reward_tensor [B, R] (score on the last response token), or with
        ``return_dict`` {"reward_tensor": ..., "reward_extra_info": {key: list of B}}."""
        if "rm_scores" in data.batch.keys():
            return output(data.batch["rm_scores"], {}, return_dict)
        solutions, lengths = decode_responses(data, self.tokenizer)
        sources, truths, extras = row_fields(data, self.reward_fn_key)
        results = self._score(sources, solutions, truths, extras)
        reward, extra_info = assemble(data, results, lengths, sources)
        if self.overlong is not None:
            self._add_overlong_penalty(reward, extra_info, lengths)
        self.examine(data, sources, solutions, truths, results)
        return output(reward, extra_info, return_dict)

    def _add_overlong_penalty(self, reward: torch.Tensor, extra_info: dict, lengths: torch.Tensor) -> None:
        """Add DAPO's overlong penalty [B] to the score on each response's last valid token, in place."""
        lengths = lengths.to(reward.device)
        penalty = self.overlong.penalty(lengths)
        reward[torch.arange(len(lengths), device=reward.device), (lengths - 1).clamp(min=0)] += penalty
        if self.overlong.log:
            extra_info["overlong_reward"] = penalty.tolist()
            extra_info["overlong"] = (penalty < 0).tolist()
