"""Name -> reward-manager class (``reward_model.reward_manager=<name>``)."""
from __future__ import annotations

_REWARD_MANAGERS: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a reward manager selectable as ``reward_model.reward_manager=<name>``."""

    def decorator(cls):
        if name in _REWARD_MANAGERS and _REWARD_MANAGERS[name] is not cls:
            raise ValueError(f"reward manager {name!r} is already registered as {_REWARD_MANAGERS[name].__name__}")
        _REWARD_MANAGERS[name] = cls
        return cls

    return decorator


def get_reward_manager_cls(name: str) -> type:
    """The class registered as ``name``; ValueError listing the known names otherwise."""
    if name not in _REWARD_MANAGERS:
        raise ValueError(f"unknown reward_model.reward_manager={name!r}; known: {', '.join(sorted(_REWARD_MANAGERS))}")
    return _REWARD_MANAGERS[name]


def list_reward_managers() -> list[str]:
    return sorted(_REWARD_MANAGERS)
