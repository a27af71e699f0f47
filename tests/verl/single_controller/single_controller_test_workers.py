"""Small workers used by the single-controller tests (importable by Ray worker processes)."""
import os
import random
import time

import numpy as np
import torch
import torch.distributed as dist

from verl.protocol import DataProto
from verl.single_controller.base import Worker
from verl.single_controller.base.decorator import (
    Dispatch,
    Execute,
    dispatch_one_to_all,
    get_predefined_dispatch_fn,
    register,
    register_dispatch_mode,
)


def collect_sum(worker_group, outputs):
    return sum(outputs)


try:
    get_predefined_dispatch_fn("SUM_OVER_RANKS")
except ValueError:  # this module may be imported under two names; register once
    register_dispatch_mode("SUM_OVER_RANKS", dispatch_one_to_all, collect_sum)


class ProbeWorker(Worker):
    """Reports what it sees and does simple row-wise maths so dispatch modes can be checked end to end."""

    def __init__(self, role: str = "actor", scale: int = 1):
        super().__init__()
        self.role = role
        self.scale = scale
        self.rank_zero_calls = 0

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def whoami(self) -> dict:
        return {
            "role": self.role,
            "rank": self.rank,
            "world_size": self.world_size,
            "local_rank": self.local_rank,
            "pid": os.getpid(),
            "master": self.get_master_addr_port(),
        }

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def draw_random(self) -> tuple[float, float, float]:
        """The next number of python's random, numpy's global RNG and torch's, in that order."""
        return random.random(), float(np.random.rand()), torch.rand(1).item()

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def all_reduce_rank_plus_one(self) -> float:
        self.init_distributed()
        t = torch.tensor([float(self.rank + 1)])
        dist.all_reduce(t)
        return t.item()

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def scale_rows(self, data: DataProto) -> DataProto:
        """y = x * scale, plus which rank saw the row and how many rows that rank got."""
        n = len(data)
        return DataProto.from_dict(
            tensors={
                "x": data.batch["x"] * self.scale,
                "seen_by_rank": torch.full((n,), self.rank),
                "chunk_rows": torch.full((n,), n),
            },
            non_tensors={"uid": data.non_tensor_batch["uid"]},
            meta_info={"metrics": {f"{self.role}/rows": n}},
        )

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO, blocking=False)
    def scale_rows_async(self, data: DataProto) -> DataProto:
        return self.scale_rows(data)

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def repeat_rows(self, data: DataProto) -> DataProto:
        return data.repeat(2)

    @register(dispatch_mode=Dispatch.DP_COMPUTE_METRIC)
    def count_rows(self, data: DataProto) -> dict:
        return {"rank": self.rank, "rows": len(data)}

    @register(dispatch_mode=Dispatch.DP_COMPUTE)
    def add(self, a, b):
        return a + b

    @register(dispatch_mode=Dispatch.ALL_TO_ALL)
    def pair(self, per_rank, shared):
        return (per_rank, shared)

    @register(dispatch_mode=Dispatch.RANK_ZERO)
    def rank_of_answer(self) -> int:
        return self.rank

    @register(dispatch_mode=Dispatch.ONE_TO_ALL, execute_mode=Execute.RANK_ZERO)
    def bump_on_rank_zero(self) -> int:
        self.rank_zero_calls += 1
        return self.rank

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def get_rank_zero_calls(self) -> int:
        return self.rank_zero_calls

    @register(dispatch_mode="SUM_OVER_RANKS")
    def rank_plus_ten(self) -> int:
        return self.rank + 10

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def raise_on_rank(self, rank: int) -> None:
        if self.rank == rank:
            raise ValueError(f"deliberate failure on rank {rank}")

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_on_rank(self, rank: int) -> float:
        """The chosen rank's process dies; the others wait for it in an all_reduce."""
        self.init_distributed()
        if self.rank == rank:
            os._exit(3)
        t = torch.ones(1)
        dist.all_reduce(t)
        return t.item()


class EnvReportingWorker(Worker):
    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def getenv(self, name: str):
        return os.environ.get(name)
