"""Per-sample scoring with verl's signature ``compute_score(data_source, solution_str, ground_truth, extra_info)``."""
from __future__ import annotations

from typing import Callable

from verl.protocol import DataProto
from verl.workers.reward_manager.base import (ExaminePrinter, RewardFunctionError, assemble, decode_responses,
                                              output, row_fields)
from verl.workers.reward_manager.registry import register


@register("naive")
class NaiveRewardManager:
    """Calls ``compute_score`` once per sample (a verl user's reward file works unchanged).

    Args:
        tokenizer: decodes the responses (once, for the whole batch).
        num_examine: decoded samples to print per data_source and call.
        compute_score: per-sample function; extra keyword arguments come from ``**reward_kwargs``.
        reward_fn_key: the non-tensor column holding the data_source.
    """

    def __init__(self, tokenizer, num_examine: int, compute_score: Callable, reward_fn_key: str = "data_source",
                 **reward_kwargs):
        if compute_score is None:
            raise ValueError("NaiveRewardManager needs a compute_score function")
        self.tokenizer = tokenizer
        self.compute_score = compute_score
        self.reward_fn_key = reward_fn_key
        self.reward_kwargs = reward_kwargs
        self.examine = ExaminePrinter(tokenizer, num_examine)

    def __call__(self, data: DataProto, return_dict: bool = False):
        """Score a batch. Returns reward_tensor [B, R] (score on the last response token), or with
        ``return_dict`` {"reward_tensor": ..., "reward_extra_info": {key: list of B}}."""
        if "rm_scores" in data.batch.keys():
            return output(data.batch["rm_scores"], {}, return_dict)
        solutions, lengths = decode_responses(data, self.tokenizer)
        sources, truths, extras = row_fields(data, self.reward_fn_key)
        results = []
        for i in range(len(data)):
            try:
                results.append(self.compute_score(data_source=sources[i], solution_str=solutions[i],
                                                  ground_truth=truths[i], extra_info=extras[i], **self.reward_kwargs))
            except Exception as e:
                raise RewardFunctionError(
                    f"reward function {getattr(self.compute_score, '__name__', self.compute_score)} failed on "
                    f"sample {i} (data_source={sources[i]!r}): {type(e).__name__}: {e}") from e
        reward, extra_info = assemble(data, results, lengths, sources)
        self.examine(data, sources, solutions, truths, results)
        return output(reward, extra_info, return_dict)
