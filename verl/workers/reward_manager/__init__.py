"""Reward managers: turn a batch of generated responses into token-level scores with a function reward."""
from verl.workers.reward_manager.base import RewardFunctionError
from verl.workers.reward_manager.batch import BatchRewardManager
from verl.workers.reward_manager.naive import NaiveRewardManager
from verl.workers.reward_manager.registry import get_reward_manager_cls, list_reward_managers, register
from verl.workers.reward_manager.scorer_registry import DEFAULT_SCORERS, ScorerRegistry, register_scorer

__all__ = [
    "BatchRewardManager",
    "NaiveRewardManager",
    "RewardFunctionError",
    "ScorerRegistry",
    "DEFAULT_SCORERS",
    "get_reward_manager_cls",
    "list_reward_managers",
    "register",
    "register_scorer",
]
