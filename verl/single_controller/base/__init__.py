"""Backend-independent pieces of the single controller: Worker, WorkerGroup, @register and dispatch modes."""
from verl.single_controller.base.decorator import Dispatch, Execute, register
from verl.single_controller.base.errors import WorkerDiedError, WorkerError, WorkerTimeoutError
from verl.single_controller.base.future import WorkerGroupFuture
from verl.single_controller.base.worker import Worker
from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool, WorkerGroup

__all__ = [
    "ClassWithInitArgs",
    "Dispatch",
    "Execute",
    "ResourcePool",
    "Worker",
    "WorkerDiedError",
    "WorkerError",
    "WorkerGroup",
    "WorkerGroupFuture",
    "WorkerTimeoutError",
    "register",
]
