"""Colocation on Ray: the roles' classes fused into one actor class (see base.colocate)."""
from __future__ import annotations

from verl.single_controller.base.colocate import build_colocated_class
from verl.single_controller.base.worker_group import ClassWithInitArgs
from verl.single_controller.ray.worker_group import RayClassWithInitArgs


def create_colocated_worker_cls(class_dict: dict[str, ClassWithInitArgs]) -> RayClassWithInitArgs:
    """One RayClassWithInitArgs running every role of ``class_dict`` in the same actor.

    Build a RayWorkerGroup from it, then ``wg.spawn(prefix_set=class_dict.keys())`` for per-role views.
    Actor options of the roles (e.g. ``runtime_env``) are merged; conflicting values are an error.
    """
    fused = build_colocated_class(class_dict)
    out = RayClassWithInitArgs(fused.cls, *fused.args, **fused.kwargs)
    env_vars: dict = {}
    for role, cia in class_dict.items():
        options = cia.options if isinstance(cia, RayClassWithInitArgs) else {}
        runtime_env = dict(options.get("runtime_env") or {})
        env_vars.update(runtime_env.pop("env_vars", {}))
        rest = {k: v for k, v in options.items() if k != "runtime_env"}
        if runtime_env:
            rest["runtime_env"] = runtime_env
        for key, value in rest.items():
            if key in out.options and out.options[key] != value:
                raise ValueError(
                    f"create_colocated_worker_cls: role {role!r} sets option {key}={value!r}, "
                    f"another role {out.options[key]!r}"
                )
        out.update_options(rest)
    if env_vars:
        runtime_env = dict(out.options.get("runtime_env") or {})
        runtime_env["env_vars"] = env_vars
        out.update_options({"runtime_env": runtime_env})
    return out
