"""Check the reward before any worker starts: every data_source of the train and val files has a scorer, and each
scorer in use passes its own ``preflight`` check (e.g. its retrieval index exists and answers a query).

Without this a missing scorer or index shows up only at the first reward computation, after the workers have
started, loaded the models and generated a batch (minutes to hours on a cluster), or, for a scorer that treats a
missing resource as "no hit", never.

The preflight protocol (verl never imports a task): a custom reward function, or the module that defines it, may
define ``preflight(**reward_kwargs)``. It is called once in the driver with ``custom_reward_function.reward_kwargs``
(a scorer from ``reward_model.data_source_scorers`` gets no keyword arguments) and raises with a clear message when
the scorer cannot work.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Callable

from omegaconf import DictConfig, ListConfig

from verl.trainer.config_check import ConfigError
from verl.trainer.ppo.reward import build_scorer_registry, custom_reward_target, scorer_hook


def _files(value) -> list[str]:
    if value is None:
        return []
    return [str(f) for f in value] if isinstance(value, (list, tuple, ListConfig)) else [str(value)]


def data_source_counts(path: str, column: str, key: str) -> Counter:
    """{data_source: rows} of one parquet file, reading only ``column``; errors name ``key`` (the config key that
    listed the file) and the file."""
    import pyarrow.parquet as pq

    full = os.path.expanduser(path)
    if not os.path.isfile(full):
        raise ConfigError(f"{key}: parquet file not found: {path!r}")
    names = pq.read_schema(full).names
    if column not in names:
        raise ConfigError(f"{key}: {path!r} has no {column!r} column (data.reward_fn_key picks the scorer by it); "
                          f"columns: {names}")
    return Counter(str(v) for v in pq.read_table(full, columns=[column]).column(column).to_pylist())


def data_sources(config: DictConfig) -> dict[str, list[str]]:
    """{data_source: ["N rows of data.train_files 'path'", ...]} over the train and val files."""
    column = config.data.get("reward_fn_key", "data_source")
    found: dict[str, list[str]] = {}
    for key in ("data.train_files", "data.val_files"):
        for path in _files(config.data.get(key.split(".", 1)[1])):
            for source, rows in sorted(data_source_counts(path, column, key).items()):
                found.setdefault(source, []).append(f"{rows} rows of {key} {path!r}")
    return found


def unscored_data_source_errors(config: DictConfig, sources: dict[str, list[str]]) -> list[str]:
    """One message per data_source in ``sources`` (see ``data_sources``) that no scorer takes: none when
    ``custom_reward_function.path`` is set (it scores every row), else each must match the data_source registry
    (the process-wide ``DEFAULT_SCORERS`` plus ``reward_model.data_source_scorers``)."""
    if custom_reward_target(config) is not None:
        return []
    registry = build_scorer_registry(config)
    registered = ", ".join(repr(k) for k in registry.keys()) or "none"
    errors = []
    for source, where in sources.items():
        try:
            registry.lookup(source)
        except KeyError:
            errors.append(
                f"no reward function for data_source {source!r} ({'; '.join(where)}); registered data sources: "
                f"{registered}. Register one with reward_model.data_source_scorers (a map of data_source or pattern "
                f"such as 'gsm8k*' -> 'package.module:function' or '/path/file.py:function'), or set "
                f"custom_reward_function.path (a .py file or module; custom_reward_function.name, default "
                f"compute_score) to score every data_source, or call verl.workers.reward_manager.register_scorer")
    return errors


def _run(hook: Callable, what: str, kwargs: dict) -> None:
    try:
        hook(**kwargs)
    except Exception as e:
        raise ConfigError(f"the reward is not ready ({what} preflight): {e}") from e


def run_reward_preflights(config: DictConfig, sources: dict[str, list[str]]) -> None:
    """Call the ``preflight`` hook of every scorer that ``sources`` use, once each (see the module docstring)."""
    target = custom_reward_target(config)
    if target is not None:
        hook = scorer_hook(target.fn, "preflight", target.module)
        if hook is not None:
            _run(hook, f"custom_reward_function.path={target.path!r}", target.kwargs)
        return
    registry, seen = build_scorer_registry(config), []
    for source in sources:
        hook = scorer_hook(registry.lookup(source), "preflight")
        if hook is not None and hook not in seen:
            seen.append(hook)
            _run(hook, f"scorer of data_source {source!r}", {})


def check_reward_before_workers(config: DictConfig) -> None:
    """Raise ConfigError when a data_source of the train / val files has no scorer (all of them listed) or a scorer's
    preflight fails. Reads only the reward_fn_key column of each file."""
    sources = data_sources(config)
    errors = unscored_data_source_errors(config, sources)
    if errors:
        raise ConfigError(f"Reward not configured for {len(errors)} data source{'s' if len(errors) > 1 else ''}:\n"
                          "  - " + "\n  - ".join(errors))
    run_reward_preflights(config, sources)
