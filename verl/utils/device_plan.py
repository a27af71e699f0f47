"""Where one worker computes and how it talks to its peers, decided from its environment and config alone.

Every GPU decision a worker makes lives here as a pure function of (device, environment, fsdp_config), so it can be
unit-tested for GPU inputs on a machine without one:

- which CUDA device index this process uses. Ray masks each GPU actor to its own GPU (``CUDA_VISIBLE_DEVICES=3``):
  inside the actor the only device is ``cuda:0``, whatever its node-local rank. torchrun leaves every GPU visible and
  ``LOCAL_RANK`` picks one. The index is therefore the rank's position among the VISIBLE devices;
- the ``LOCAL_RANK`` handed to vLLM's external launcher, which builds ``cuda:{LOCAL_RANK}`` itself: the same index;
- the torch.distributed backend: ``cpu:gloo,cuda:nccl`` on GPU (a gradient norm over CPU-offloaded shards, or any
  CPU collective, needs gloo next to nccl), ``gloo`` on CPU;
- offload: FSDP2's ``CPUOffloadPolicy`` (``param_offload``) keeps parameters, gradients and the optimizer step on the
  CPU, so the optimizer state must stay there too: ``optimizer_offload`` then has nothing to move. Without
  param_offload, ``optimizer_offload`` moves Adam's moments to the GPU for each step and back afterwards;
- mixed precision: the FSDP2 param / reduce dtypes (bf16 / fp32 on GPU by default, fp32 on CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from verl.utils.fsdp_utils import mixed_precision_policy

DEVICES = ("cpu", "cuda")


def visible_cuda_devices(env: Mapping[str, str]) -> Optional[list[str]]:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (ids or UUIDs) in order; None when the variable is unset (all GPUs
    visible). An empty string means no GPU is visible."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip()]


def cuda_device_index(local_rank: int, visible_count: int) -> int:
    """The torch CUDA index of this rank among the ``visible_count`` devices it sees.

    One visible device (Ray's one-GPU actors): 0 for every rank. Several (torchrun, or Ray with
    RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES): ``local_rank``, which must then be one of them.
    """
    if visible_count < 1:
        raise RuntimeError(f"LOCAL_RANK={local_rank}: no CUDA device is visible to this process "
                           "(CUDA_VISIBLE_DEVICES is empty, or torch sees no GPU)")
    if visible_count == 1:
        return 0
    if not 0 <= local_rank < visible_count:
        raise RuntimeError(f"LOCAL_RANK={local_rank} but this process sees only {visible_count} CUDA devices "
                           "(CUDA_VISIBLE_DEVICES); a node-local rank must index a visible device")
    return local_rank


def process_group_backend(device: str) -> str:
    """torch.distributed backend for ``device``: gloo on CPU; nccl for CUDA tensors plus gloo for CPU tensors."""
    _check_device(device)
    return "cpu:gloo,cuda:nccl" if device == "cuda" else "gloo"


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")


@dataclass(frozen=True)
class DevicePlan:
    """One worker's device decisions (see the module docstring). ``device_index`` is None on CPU."""

    device: str
    device_index: Optional[int]
    backend: str
    vllm_local_rank: int
    param_offload: bool
    optimizer_offload: bool
    param_dtype: torch.dtype
    reduce_dtype: torch.dtype


def plan_device(device: str, env: Optional[Mapping[str, str]] = None, fsdp_config=None,
                visible_count: Optional[int] = None) -> DevicePlan:
    """The plan for a worker on ``device`` ("cpu" or "cuda") with environment ``env`` (default ``os.environ``:
    LOCAL_RANK, CUDA_VISIBLE_DEVICES) and the role's ``fsdp_config`` (param_offload, optimizer_offload,
    mixed_precision). ``visible_count``: the number of CUDA devices the process sees; default the length of
    CUDA_VISIBLE_DEVICES when set, else ``torch.cuda.device_count()``."""
    _check_device(device)
    env = os.environ if env is None else env
    fsdp_config = fsdp_config or {}
    local_rank = int(env.get("LOCAL_RANK", 0))
    index = None
    if device == "cuda":
        if visible_count is None:
            visible = visible_cuda_devices(env)
            visible_count = len(visible) if visible is not None else torch.cuda.device_count()
        index = cuda_device_index(local_rank, visible_count)
    on_gpu = device == "cuda"
    param_offload = on_gpu and bool(fsdp_config.get("param_offload", False))
    mp = mixed_precision_policy(fsdp_config, device)
    return DevicePlan(
        device=device,
        device_index=index,
        backend=process_group_backend(device),
        vllm_local_rank=index if on_gpu else 0,
        param_offload=param_offload,
        optimizer_offload=on_gpu and not param_offload and bool(fsdp_config.get("optimizer_offload", False)),
        param_dtype=mp.param_dtype,
        reduce_dtype=mp.reduce_dtype,
    )


def resolve_cluster_device(requested: str, gpus: float, world_size: int, where: str) -> str:
    """The device every worker uses, decided from where the workers run, never from the driver's own ``torch.cuda``
    (a Ray head node is often CPU-only).

    Args:
        requested: ``trainer.device``: "auto", "cpu" or "cuda".
        gpus: GPUs where the workers will run (Ray: ``ray.cluster_resources()["GPU"]``; in-process: this process's).
        world_size: worker ranks (trainer.nnodes x trainer.n_gpus_per_node); on cuda each needs a GPU.
        where: how ``gpus`` was found, for error messages.
    Returns "cpu" or "cuda"; raises RuntimeError when cuda is requested (or implied) and the GPUs are missing.
    """
    if requested not in ("auto", *DEVICES):
        raise ValueError(f"trainer.device={requested!r} is not one of auto, cpu, cuda")
    device = requested if requested != "auto" else ("cuda" if gpus > 0 else "cpu")
    if device == "cuda" and gpus < world_size:
        raise RuntimeError(
            f"trainer.device={requested} needs {world_size} GPU(s) (trainer.nnodes x trainer.n_gpus_per_node) but "
            f"{where} has {gpus:g}"
            + ("; use trainer.device=cpu to run on CPU" if gpus == 0 else "; lower trainer.n_gpus_per_node / nnodes")
        )
    return device
