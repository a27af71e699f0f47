"""Worker: one rank of an SPMD worker group."""
from __future__ import annotations

import os
import socket
from typing import Any, Optional

from verl.single_controller.base.decorator import PAD_ROWS_KEY, get_registered, materialize_inputs, strip_padding

# The environment a worker group sets for each rank (torchrun's names).
RANK_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# This rank's seed (already ``rank_seed(base, rank)``), set by a worker group built with ``seed=``.
SEED_ENV_VAR = "VERL_WORKER_SEED"

# The seed this process was seeded with from SEED_ENV_VAR: colocated roles are built one after another in one
# process, and only the first construction may seed it (later ones would restart the streams).
_process_seeded_with: Optional[str] = None


def seed_process_from_env() -> None:
    """Seed random / numpy / torch from ``VERL_WORKER_SEED`` once per process (nothing when it is unset)."""
    global _process_seeded_with
    seed = os.environ.get(SEED_ENV_VAR)
    if seed is None or seed == _process_seeded_with:
        return
    try:
        value = int(seed)
    except ValueError:
        raise ValueError(f"{SEED_ENV_VAR}={seed!r} is not an integer") from None
    from verl.utils.seeding import seed_everything

    seed_everything(value)
    _process_seeded_with = seed


def get_free_port() -> int:
    """A TCP port that was free a moment ago on this host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def get_node_ip() -> str:
    """This host's address as other nodes reach it (Ray's view when Ray runs, else the route to the world)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    except ImportError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent; this only picks the outgoing interface
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class Worker:
    """Base class of the classes a WorkerGroup runs, one instance per rank.

    Rank, world size, local rank and the rendezvous address come from the environment that the
    worker group sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``); a Worker made outside any group is rank 0 of 1.
    Methods decorated with ``@register`` become methods of the worker group. A group built with
    ``seed=`` seeds random / numpy / torch of each rank with ``seed + rank`` before the worker's
    ``__init__`` runs (``VERL_WORKER_SEED``). torch.distributed is set up on demand by
    ``init_distributed()`` (or by the subclass calling ``torch.distributed.init_process_group()``
    itself: the environment is already in place).
    """

    def __new__(cls, *args, **kwargs):
        # Read the environment here so subclasses that forget super().__init__() still know their rank.
        instance = super().__new__(cls)
        env = os.environ
        instance._rank = int(env.get("RANK", 0))
        instance._world_size = int(env.get("WORLD_SIZE", 1))
        instance._local_rank = int(env.get("LOCAL_RANK", 0))
        instance._local_world_size = int(env.get("LOCAL_WORLD_SIZE", 1))
        instance._master_addr = env.get("MASTER_ADDR")
        instance._master_port = env.get("MASTER_PORT")
        if not 0 <= instance._rank < instance._world_size:
            raise ValueError(f"{cls.__name__}: RANK={instance._rank} is outside WORLD_SIZE={instance._world_size}")
        seed_process_from_env()
        return instance

    def __init__(self, cuda_visible_devices: Optional[str] = None) -> None:
        # Accepted for verl compatibility; device visibility is decided by the backend (Ray sets it).
        self._cuda_visible_devices = cuda_visible_devices

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def local_rank(self) -> int:
        return self._local_rank

    @property
    def local_world_size(self) -> int:
        return self._local_world_size

    def get_master_addr_port(self) -> tuple[Optional[str], Optional[str]]:
        return self._master_addr, self._master_port

    @property
    def device_name(self) -> str:
        """"cuda" when this process sees a GPU, else "cpu"."""
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def init_distributed(self, device: Optional[str] = None, timeout_s: float = 1800.0) -> None:
        """Join the default torch.distributed process group of this worker group (idempotent).

        ``device`` ("cpu" or "cuda"; default cuda when this process sees a GPU) picks the backend and, on cuda, the
        GPU among the visible ones: gloo on CPU, ``cpu:gloo,cuda:nccl`` on GPU (so CPU tensors, e.g. offloaded
        shards, can still be reduced); see ``verl.utils.distributed``. Several workers colocated in one process
        share the one default group.
        """
        import torch.distributed as dist

        from verl.utils.distributed import init_process_group

        if dist.is_initialized():
            if dist.get_world_size() != self.world_size or dist.get_rank() != self.rank:
                raise RuntimeError(
                    f"torch.distributed is already initialized as rank {dist.get_rank()} of {dist.get_world_size()}, "
                    f"but this worker is rank {self.rank} of {self.world_size}"
                )
            return
        if self._master_addr is None or self._master_port is None:
            if self.world_size != 1:
                raise RuntimeError(f"rank {self.rank} of {self.world_size}: MASTER_ADDR/MASTER_PORT are not set")
            self._master_addr, self._master_port = "127.0.0.1", str(get_free_port())
        os.environ.update(
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK=str(self.local_rank),
            MASTER_ADDR=str(self._master_addr),
            MASTER_PORT=str(self._master_port),
        )
        init_process_group(device or self.device_name, timeout_s)

    def _execute_registered(self, method_name: str, args: tuple, kwargs: dict) -> Any:
        """Worker side of every worker-group call: resolve inputs, run the method, drop DP padding."""
        method = getattr(self, method_name)
        spec = get_registered(method)
        pad_rows = kwargs.pop(PAD_ROWS_KEY, None)
        args, kwargs, shard_pad_rows = materialize_inputs(
            args, kwargs, resolve_futures=spec is None or spec.materialize_futures
        )
        if pad_rows is None:
            pad_rows = shard_pad_rows
        if not pad_rows:
            return method(*args, **kwargs)
        from verl.protocol import DataProto

        n_input_rows = next(len(v) for v in (*args, *kwargs.values()) if isinstance(v, DataProto))
        return strip_padding(method(*args, **kwargs), pad_rows, n_input_rows, method_name)
