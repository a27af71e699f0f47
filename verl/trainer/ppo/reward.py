"""Build the reward function from config and apply it to a batch (verl's names)."""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from verl.protocol import DataProto
from verl.workers.reward_manager import DEFAULT_SCORERS, ScorerRegistry, get_reward_manager_cls
from verl.utils.import_utils import import_module_or_file


@dataclass(frozen=True)
class CustomRewardTarget:
    """What ``custom_reward_function`` points at: the imported module, the function, its reward_kwargs."""

    path: str
    name: str
    module: ModuleType
    fn: Callable
    kwargs: dict


def custom_reward_target(config: DictConfig) -> CustomRewardTarget | None:
    """Import ``custom_reward_function.{path, name}``; None if no path. ``path`` is a ``.py`` file (verl's
    convention) or an importable module name."""
    section = config.get("custom_reward_function") or {}
    path = section.get("path")
    if not path:
        return None
    name = section.get("name") or "compute_score"
    module = import_module_or_file(str(path), what=f"custom_reward_function.path={path!r}")
    if not hasattr(module, name):
        raise AttributeError(f"custom_reward_function.name={name!r} not found in {path!r}")
    kwargs = section.get("reward_kwargs") or {}
    kwargs = OmegaConf.to_container(kwargs, resolve=True) if OmegaConf.is_config(kwargs) else dict(kwargs)
    return CustomRewardTarget(str(path), name, module, getattr(module, name), kwargs)


def scorer_hook(fn: Callable, name: str, module: Optional[ModuleType] = None) -> Optional[Callable]:
    """A hook a scorer offers by name (``preflight``, ``describe_generations``): an attribute of the function itself,
    else of ``module`` (default: the module that defines ``fn``); None when there is none or it is not callable.
    verl finds a task's hooks this way and never imports the task itself."""
    hook = getattr(fn, name, None)
    if hook is None:
        module = module if module is not None else sys.modules.get(getattr(fn, "__module__", None) or "")
        hook = getattr(module, name, None)
    return hook if callable(hook) else None


def get_custom_reward_fn(config: DictConfig) -> Callable | None:
    """``custom_reward_function.{path, name}`` -> the function with ``reward_kwargs`` bound; None if no path."""
    target = custom_reward_target(config)
    if target is None:
        return None
    fn, kwargs = target.fn, target.kwargs

    @functools.wraps(fn)
    def wrapped(*args, **kw):
        return fn(*args, **kw, **kwargs)

    return wrapped


def build_scorer_registry(config: DictConfig) -> ScorerRegistry:
    """The data_source registry: the process-wide ``DEFAULT_SCORERS`` plus ``reward_model.data_source_scorers``
    ({data_source or pattern: "module:function"})."""
    registry = DEFAULT_SCORERS.copy()
    for source, spec in (config.reward_model.get("data_source_scorers") or {}).items():
        registry.register(str(source), str(spec))
    return registry


def load_reward_manager(config: DictConfig, tokenizer, num_examine: int, **reward_kwargs):
    """The reward manager named by ``reward_model.reward_manager`` around the configured scorer.

    The scorer is ``custom_reward_function`` if set, else the data_source registry (``build_scorer_registry``).
    ``reward_model.overlong_buffer`` (DAPO's overlong penalty) applies to training and validation scores alike, as
    in verl's DAPO recipe.
    """
    manager_name = config.reward_model.get("reward_manager", "naive")
    manager_cls = get_reward_manager_cls(manager_name)
    compute_score = get_custom_reward_fn(config)
    if compute_score is None:
        registry = build_scorer_registry(config)
        compute_score = (registry.score_batch_by_data_source if manager_name == "batch"
                         else registry.score_by_data_source)
    return manager_cls(tokenizer=tokenizer, num_examine=num_examine, compute_score=compute_score,
                       reward_fn_key=config.data.get("reward_fn_key", "data_source"),
                       max_resp_len=config.data.get("max_response_length"),
                       overlong_buffer_cfg=config.reward_model.get("overlong_buffer"), **reward_kwargs)


def compute_reward(data: DataProto, reward_fn) -> tuple[torch.Tensor, dict[str, list]]:
    """Apply a reward manager. Returns (reward_tensor [B, R], reward_extra_info {key: list of B values})."""
    result = reward_fn(data, return_dict=True)
    return result["reward_tensor"], result.get("reward_extra_info", {})
