"""In-process backend (world size 1) with the WorkerGroup interface."""
from verl.single_controller.local.worker_group import LocalWorkerGroup

__all__ = ["LocalWorkerGroup"]
