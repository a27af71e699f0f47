"""Single controller: one driver process writes the dataflow; SPMD workers run it.

``Worker`` + ``@register(dispatch_mode=...)`` on the worker side; ``WorkerGroup`` on the driver side,
with a Ray backend (``verl.single_controller.ray``) and an in-process one (``verl.single_controller.local``).
"""
from verl.single_controller.base import (
    ClassWithInitArgs,
    ResourcePool,
    Worker,
    WorkerDiedError,
    WorkerError,
    WorkerGroup,
    WorkerGroupFuture,
    WorkerTimeoutError,
)
from verl.single_controller.factory import (
    BACKENDS,
    create_colocated_worker_cls,
    make_resource_pool,
    make_worker_group,
    make_worker_groups,
)

__all__ = [
    "BACKENDS",
    "ClassWithInitArgs",
    "ResourcePool",
    "Worker",
    "WorkerDiedError",
    "WorkerError",
    "WorkerGroup",
    "WorkerGroupFuture",
    "WorkerTimeoutError",
    "create_colocated_worker_cls",
    "make_resource_pool",
    "make_worker_group",
    "make_worker_groups",
]
