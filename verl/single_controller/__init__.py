"""Single controller: one driver process writes the dataflow; SPMD workers run it.

``Worker`` + ``@register(dispatch_mode=...)`` on the worker side; ``WorkerGroup`` on the driver side,
with a Ray backend (``verl.single_controller.ray``) and an in-process one (``verl.single_controller.local``).
Everything ``verl.single_controller.base`` exports is re-exported here (its ``__all__`` is the one list), as in verl.
"""
from verl.single_controller import base
from verl.single_controller.base import *  # noqa: F401,F403 - names listed once, in base.__all__
from verl.single_controller.factory import (
    BACKENDS,
    create_colocated_worker_cls,
    make_resource_pool,
    make_worker_group,
    make_worker_groups,
)

__all__ = [
    *base.__all__,
    "BACKENDS",
    "create_colocated_worker_cls",
    "make_resource_pool",
    "make_worker_group",
    "make_worker_groups",
]
