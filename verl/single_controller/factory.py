"""Build worker groups from config without the trainer knowing the backend ("ray" or "local")."""
from __future__ import annotations

from typing import Any, Optional

from verl.single_controller.base.colocate import build_colocated_class
from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool, WorkerGroup, unique_name_prefix

BACKENDS = ("ray", "local")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown single-controller backend {backend!r}; choose one of {BACKENDS}")


def make_resource_pool(
    backend: str, process_on_nodes: list[int], use_gpu: bool = False, **ray_options: Any
) -> ResourcePool:
    """``process_on_nodes[i]`` ranks on node i; on "local" only ``[1]`` is allowed.

    ``ray_options`` go to RayResourcePool (``max_colocate_count``, ``num_cpus_per_process``, ``name_prefix``...).
    """
    _check_backend(backend)
    if backend == "local":
        if list(process_on_nodes) != [1]:
            raise ValueError(f"the local backend runs world size 1 only (process_on_nodes=[1]), got {process_on_nodes}")
        return ResourcePool([1], max_colocate_count=ray_options.get("max_colocate_count", 10))
    from verl.single_controller.ray import RayResourcePool

    return RayResourcePool(process_on_nodes, use_gpu=use_gpu, **ray_options)


def make_worker_group(
    backend: str, resource_pool: ResourcePool, cls_with_init: ClassWithInitArgs, **options: Any
) -> WorkerGroup:
    """A worker group of ``cls_with_init`` on ``resource_pool`` (options: ``call_timeout_s``, ``seed``, Ray ones)."""
    _check_backend(backend)
    if backend == "local":
        from verl.single_controller.local import LocalWorkerGroup

        return LocalWorkerGroup(resource_pool, cls_with_init, **options)
    from verl.single_controller.ray import RayWorkerGroup

    return RayWorkerGroup(resource_pool, cls_with_init, **options)


def create_colocated_worker_cls(class_dict: dict[str, ClassWithInitArgs]) -> ClassWithInitArgs:
    """All roles of ``class_dict`` in one worker class, for either backend; ``spawn`` gives per-role views."""
    return build_colocated_class(class_dict)


def make_worker_groups(
    backend: str,
    role_classes: dict[str, ClassWithInitArgs],
    resource_pool_spec: Optional[dict[str, list[int]]] = None,
    mapping: Optional[dict[str, str]] = None,
    use_gpu: bool = False,
    call_timeout_s: Optional[float] = None,
    ray_init_kwargs: Optional[dict] = None,
    seed: Optional[int] = None,
    **pool_options: Any,
) -> dict[str, WorkerGroup]:
    """Role -> WorkerGroup view, with the roles that share a resource pool colocated in one process per rank.

    ``resource_pool_spec``: pool name -> process_on_nodes (default ``{"global_pool": [1]}``);
    ``mapping``: role -> pool name (default: every role on the first pool). This is verl's
    ResourcePoolManager layout: e.g. ``{"global_pool": [n_gpus_per_node] * nnodes}`` with actor_rollout,
    ref and critic all mapped to it. On "ray", Ray is started (or joined via RAY_ADDRESS) when needed.
    Pool names are labels: the Ray placement groups get unique names (``<pool>_<8 hex>_verl_pg_<i>``), so
    several calls can live in one driver; a ``name_prefix`` pool option names them ``<name_prefix><pool>_...``
    instead. ``seed``: rank r of every group is seeded with ``seed + r`` (see WorkerGroup).
    Shut the groups down with ``shutdown()`` on any view of each group.
    """
    _check_backend(backend)
    spec = resource_pool_spec or {"global_pool": [1]}
    first_pool = next(iter(spec))
    mapping = {role: (mapping or {}).get(role, first_pool) for role in role_classes}
    unknown = {role: pool for role, pool in mapping.items() if pool not in spec}
    if unknown:
        raise KeyError(f"make_worker_groups: roles mapped to unknown pools {unknown}; pools are {sorted(spec)}")
    if backend == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(**(ray_init_kwargs or {}))
    user_prefix = pool_options.pop("name_prefix", None)
    views: dict[str, WorkerGroup] = {}
    try:
        for pool_name, process_on_nodes in spec.items():
            roles = {role: role_classes[role] for role, pool in mapping.items() if pool == pool_name}
            if not roles:
                continue
            name_prefix = unique_name_prefix(pool_name) if user_prefix is None else f"{user_prefix}{pool_name}_"
            pool = make_resource_pool(
                backend, process_on_nodes, use_gpu=use_gpu, name_prefix=name_prefix, **pool_options
            )
            group = make_worker_group(
                backend, pool, create_colocated_worker_cls(roles), call_timeout_s=call_timeout_s, seed=seed
            )
            views.update(group.spawn(prefix_set=list(roles)))
    except BaseException:
        for view in views.values():  # the groups of the pools built before the failing one
            view.shutdown()
        raise
    return views
