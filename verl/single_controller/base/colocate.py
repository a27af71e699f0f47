"""Several roles (actor + rollout + ref, critic, ...) in one worker process.

The colocated class builds one instance of every role's class in each worker process and exposes
role ``r``'s method ``m`` as ``r_m`` (verl's naming), with the same registration; ``spawn`` on the
worker group then gives one view per role in which ``m`` means ``r_m``.
"""
from __future__ import annotations

from typing import Any

from verl.single_controller.base.decorator import MAGIC_ATTR, get_registered
from verl.single_controller.base.worker import Worker
from verl.single_controller.base.worker_group import ClassWithInitArgs, registered_methods


class ColocatedWorker(Worker):
    """Holds one worker per role, all in this process, in ``self.worker_dict``."""

    role_classes: dict[str, type] = {}

    def __init__(self, role_inits: dict[str, tuple[type, tuple, dict]]):
        super().__init__()
        self.worker_dict = {role: cls(*args, **kwargs) for role, (cls, args, kwargs) in role_inits.items()}


def _forwarder(role: str, name: str, spec: Any):
    def forward(self, *args, **kwargs):
        return getattr(self.worker_dict[role], name)(*args, **kwargs)

    forward.__name__ = f"{role}_{name}"
    setattr(forward, MAGIC_ATTR, spec)
    return forward


def build_colocated_class(class_dict: dict[str, ClassWithInitArgs]) -> ClassWithInitArgs:
    """A ClassWithInitArgs whose class holds every role of ``class_dict`` (role -> worker class + args)."""
    if not class_dict:
        raise ValueError("create_colocated_worker_cls: class_dict is empty")
    role_classes, role_inits, methods = {}, {}, {}
    for role, cia in class_dict.items():
        if not role.isidentifier():
            raise ValueError(f"create_colocated_worker_cls: role {role!r} must be a Python identifier")
        user_cls = cia.user_cls
        if not issubclass(user_cls, Worker):
            raise TypeError(f"create_colocated_worker_cls: role {role!r} class {user_cls.__name__} is not a Worker")
        role_classes[role] = user_cls
        role_inits[role] = (user_cls, cia.args, cia.kwargs)
        for name in registered_methods(user_cls):
            methods[f"{role}_{name}"] = _forwarder(role, name, get_registered(getattr(user_cls, name)))
    name = "Colocated_" + "_".join(role_classes)
    fused = type(name, (ColocatedWorker,), {**methods, "role_classes": role_classes, "__qualname__": name})
    return ClassWithInitArgs(fused, role_inits)
