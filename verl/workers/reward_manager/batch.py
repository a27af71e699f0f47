"""One scorer call for the whole batch: ``compute_score(data_sources, solution_strs, ground_truths, extra_infos)``.

This is what a retrieval reward wants (one batched search over the unique queries, not one per sample).
"""
from __future__ import annotations

from typing import Callable

from verl.protocol import DataProto
from verl.workers.reward_manager.base import (ExaminePrinter, RewardFunctionError, assemble, decode_responses,
                                              output, row_fields)
from verl.workers.reward_manager.registry import register


@register("batch")
class BatchRewardManager:
    """Calls ``compute_score`` once with lists; it returns a list of numbers or dicts with 'score'.

    Args:
        tokenizer: decodes the responses (once, for the whole batch).
        num_examine: decoded samples to print per data_source and call.
        compute_score: batch function; extra keyword arguments come from ``**reward_kwargs``.
        reward_fn_key: the non-tensor column holding the data_source.
    """

    def __init__(self, tokenizer, num_examine: int, compute_score: Callable, reward_fn_key: str = "data_source",
                 **reward_kwargs):
        if compute_score is None:
            raise ValueError("BatchRewardManager needs a compute_score function")
        self.tokenizer = tokenizer
        self.compute_score = compute_score
        self.reward_fn_key = reward_fn_key
        self.reward_kwargs = reward_kwargs
        self.examine = ExaminePrinter(tokenizer, num_examine)

    def _call(self, sources, solutions, truths, extras) -> list:
        return list(self.compute_score(data_sources=sources, solution_strs=solutions, ground_truths=truths,
                                       extra_infos=extras, **self.reward_kwargs))

    def _first_failing_row(self, sources, solutions, truths, extras) -> tuple[int, Exception] | None:
        """After a batch call raised: rerun row by row to name the sample that breaks the scorer."""
        for i in range(len(sources)):
            try:
                self._call(sources[i:i + 1], solutions[i:i + 1], truths[i:i + 1], extras[i:i + 1])
            except Exception as e:
                return i, e
        return None

    def __call__(self, data: DataProto, return_dict: bool = False):
        """Score a batch. Returns reward_tensor [B, R] (score on the last response token), or with
        ``return_dict`` {"reward_tensor": ..., "reward_extra_info": {key: list of B}}."""
        if "rm_scores" in data.batch.keys():
            return output(data.batch["rm_scores"], {}, return_dict)
        solutions, lengths = decode_responses(data, self.tokenizer)
        sources, truths, extras = row_fields(data, self.reward_fn_key)
        name = getattr(self.compute_score, "__name__", self.compute_score)
        try:
            results = self._call(sources, solutions, truths, extras)
        except Exception as e:
            failing = self._first_failing_row(sources, solutions, truths, extras)
            if failing is not None:
                i, row_error = failing
                raise RewardFunctionError(f"batch reward function {name} failed on sample {i} "
                                          f"(data_source={sources[i]!r}): {type(row_error).__name__}: {row_error}"
                                          ) from e
            raise RewardFunctionError(f"batch reward function {name} failed on a batch of {len(sources)} samples "
                                      f"(data_sources={sorted(set(sources))}): {type(e).__name__}: {e}") from e
        if len(results) != len(data):
            raise RewardFunctionError(f"batch reward function {name} returned {len(results)} scores for "
                                      f"{len(data)} samples")
        reward, extra_info = assemble(data, results, lengths, sources)
        self.examine(data, sources, solutions, truths, results)
        return output(reward, extra_info, return_dict)
