"""One scorer call for the whole batch: ``compute_score(data_sources, solution_strs, ground_truths, extra_infos)``.

This is what a retrieval reward wants (one batched search over the unique queries, not one per sample).
"""
from __future__ import annotations

from verl.workers.reward_manager.base import FunctionRewardManager, RewardFunctionError
from verl.workers.reward_manager.registry import register


@register("batch")
class BatchRewardManager(FunctionRewardManager):
    """Calls ``compute_score`` once with lists; it returns a list of numbers or dicts with 'score'.

    Args:
        tokenizer: decodes the responses (once, for the whole batch).
        num_examine: decoded samples to print per data_source and call.
        compute_score: batch function; extra keyword arguments come from ``**reward_kwargs``.
        reward_fn_key: the non-tensor column holding the data_source.
    """

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

    def _score(self, sources, solutions, truths, extras) -> list:
        name = self.scorer_name
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
        if len(results) != len(sources):
            raise RewardFunctionError(f"batch reward function {name} returned {len(results)} scores for "
                                      f"{len(sources)} samples")
        return results
