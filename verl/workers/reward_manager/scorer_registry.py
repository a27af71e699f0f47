"""data_source -> scoring function, filled from config (``reward_model.data_source_scorers``) or code.

verl itself dispatches on data_source with a hard-coded if/elif; here a task registers its scorer from
config, e.g. ``reward_model.data_source_scorers={"amazon_c4_*": "recr1.reward:compute_score_batch"}``, so
the framework never imports a task.
"""
from __future__ import annotations

import fnmatch
from typing import Callable, Mapping

from verl.utils.import_utils import import_module_or_file


def load_function(spec: str, what: str = "function") -> Callable:
    """Import ``"package.module:function"`` or ``"/path/to/file.py:function"``; clear error on failure."""
    if ":" not in spec:
        raise ValueError(f"{what} {spec!r} must look like 'package.module:function' or '/path/file.py:function'")
    target, name = spec.rsplit(":", 1)
    module = import_module_or_file(target, what=f"{what} {spec!r}")
    if not hasattr(module, name):
        raise AttributeError(f"{what} {spec!r}: {target!r} has no attribute {name!r}")
    return getattr(module, name)


class ScorerRegistry:
    """Scorers keyed by data_source; a key may be an fnmatch pattern (``amazon_c4_*``). Exact keys win."""

    def __init__(self, scorers: Mapping[str, Callable] | None = None):
        self._scorers: dict[str, Callable] = dict(scorers or {})

    def register(self, data_source: str, fn: Callable | str) -> None:
        """Add a scorer (a callable, or a 'module:function' string) for a data_source or pattern."""
        self._scorers[data_source] = load_function(fn, f"scorer for data_source {data_source!r}") \
            if isinstance(fn, str) else fn

    def copy(self) -> "ScorerRegistry":
        return ScorerRegistry(self._scorers)

    def keys(self) -> list[str]:
        return sorted(self._scorers)

    def lookup(self, data_source: str) -> Callable:
        """The scorer for ``data_source``; KeyError naming it and the registered keys otherwise."""
        if data_source in self._scorers:
            return self._scorers[data_source]
        for pattern, fn in self._scorers.items():
            if fnmatch.fnmatchcase(data_source, pattern):
                return fn
        raise KeyError(f"no reward function for data_source={data_source!r} (registered: {self.keys() or 'none'}); "
                       f"set custom_reward_function.path/name or reward_model.data_source_scorers."
                       f"{data_source}='module:function'")

    def score_by_data_source(self, data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        """verl's ``compute_score(data_source, solution_str, ground_truth, extra_info)``, dispatched by source."""
        return self.lookup(data_source)(data_source=data_source, solution_str=solution_str,
                                        ground_truth=ground_truth, extra_info=extra_info, **kwargs)

    def score_batch_by_data_source(self, data_sources, solution_strs, ground_truths, extra_infos, **kwargs) -> list:
        """One batch call per scorer: rows are grouped by their scorer, results come back in row order."""
        groups: dict[int, tuple[Callable, list[int]]] = {}
        for i, source in enumerate(data_sources):
            fn = self.lookup(source)
            groups.setdefault(id(fn), (fn, []))[1].append(i)
        results: list = [None] * len(data_sources)
        for fn, rows in groups.values():
            out = fn(data_sources=[data_sources[i] for i in rows], solution_strs=[solution_strs[i] for i in rows],
                     ground_truths=[ground_truths[i] for i in rows], extra_infos=[extra_infos[i] for i in rows],
                     **kwargs)
            if len(out) != len(rows):
                raise ValueError(f"batch scorer {getattr(fn, '__name__', fn)} returned {len(out)} scores "
                                 f"for {len(rows)} samples")
            for i, score in zip(rows, out):
                results[i] = score
        return results


DEFAULT_SCORERS = ScorerRegistry()


def register_scorer(data_source: str):
    """Decorator: register a scorer for ``data_source`` (or pattern) in the process-wide default registry."""

    def decorator(fn):
        DEFAULT_SCORERS.register(data_source, fn)
        return fn

    return decorator
