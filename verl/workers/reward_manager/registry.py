"""Name -> reward-manager class (``reward_model.reward_manager=<name>``)."""
from __future__ import annotations

from verl.utils.registry import NameRegistry

_REWARD_MANAGERS = NameRegistry("reward_model.reward_manager")


def register(name: str):
    """Class decorator: make a reward manager selectable as ``reward_model.reward_manager=<name>``."""
    return _REWARD_MANAGERS.register(name)


def get_reward_manager_cls(name: str) -> type:
    """The class registered as ``name``; ValueError listing the known names otherwise."""
    return _REWARD_MANAGERS.lookup(name)


def list_reward_managers() -> list[str]:
    return sorted(_REWARD_MANAGERS)
