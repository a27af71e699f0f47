"""Per-sample scoring with verl's signature ``compute_score(data_source, solution_str, ground_truth, extra_info)``."""
from __future__ import annotations

from verl.workers.reward_manager.base import FunctionRewardManager, RewardFunctionError
from verl.workers.reward_manager.registry import register


@register("naive")
class NaiveRewardManager(FunctionRewardManager):
    """Calls ``compute_score`` once per sample (a verl user's reward file works unchanged).

    Args:
        tokenizer: decodes the responses (once, for the whole batch).
        num_examine: decoded samples to print per data_source and call.
        compute_score: per-sample function; extra keyword arguments come from ``**reward_kwargs``.
        reward_fn_key: the non-tensor column holding the data_source.
    """

    def _score(self, sources, solutions, truths, extras) -> list:
        results = []
        for i in range(len(sources)):
            try:
                results.append(self.compute_score(data_source=sources[i], solution_str=solutions[i],
                                                  ground_truth=truths[i], extra_info=extras[i], **self.reward_kwargs))
            except Exception as e:
                raise RewardFunctionError(f"reward function {self.scorer_name} failed on sample {i} "
                                          f"(data_source={sources[i]!r}): {type(e).__name__}: {e}") from e
        return results
