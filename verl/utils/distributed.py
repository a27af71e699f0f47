"""The one place that sets up torch.distributed, for every entry point: Ray / in-process workers, the SFT trainer
under torchrun or alone, benchmarks and tests. The device index and backend come from ``device_plan``."""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from verl.single_controller.base.worker import get_free_port
from verl.utils.device_plan import plan_device

RENDEZVOUS_ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_process_group(device: str, timeout_s: float = 1800.0) -> None:
    """Join the default process group for ``device`` ("cpu" or "cuda"); a no-op when one exists.

    With RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment (a worker group, torchrun) the group is
    joined through them; without (a notebook, a unit test, the SFT trainer run alone) a one-rank group on a free local
    port is made, so FSDP2 runs the very same code path. On cuda the process first selects its device among the
    visible ones (``device_plan.cuda_device_index``) and the backend is ``cpu:gloo,cuda:nccl``.
    """
    if dist.is_initialized():
        return
    plan = plan_device(device)
    if plan.device == "cuda":
        torch.cuda.set_device(plan.device_index)
    timeout = timedelta(seconds=timeout_s)
    if all(key in os.environ for key in RENDEZVOUS_ENV_VARS):
        dist.init_process_group(backend=plan.backend, init_method="env://", timeout=timeout)
        return
    dist.init_process_group(backend=plan.backend, init_method=f"tcp://127.0.0.1:{get_free_port()}", rank=0,
                            world_size=1, timeout=timeout)
