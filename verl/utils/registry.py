"""Name -> object registries filled by a decorator (advantage estimators, policy losses, reward managers)."""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


class NameRegistry(dict):
    """A dict of ``name -> object`` whose ``register(name)`` decorator refuses to give a taken name to a different
    object, and whose ``lookup(name)`` error lists the valid names. ``what`` names the kind in messages."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def copy(self) -> "NameRegistry":
        clone = NameRegistry(self.what)
        clone.update(self)
        return clone

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self and self[name] is not obj:
                raise ValueError(f"{self.what} {name!r} is already registered to {self[name]}")
            self[name] = obj
            return obj

        return decorator

    def lookup(self, name: str):
        """The object registered as ``name``; ValueError listing the valid names otherwise."""
        if name not in self:
            raise ValueError(f"unknown {self.what} {name!r}; valid: {sorted(self)}")
        return self[name]
