"""Failures on the Ray backend reach the driver as clear errors within a bounded time, never as a hang."""
import time

import pytest
from single_controller_test_workers import ProbeWorker

from verl.single_controller import WorkerDiedError, WorkerError, WorkerTimeoutError
from verl.single_controller.base import Worker
from verl.single_controller.ray import RayClassWithInitArgs, RayResourcePool, RayWorkerGroup

REPORT_WITHIN_S = 60


def start_probe_workers(n: int) -> RayWorkerGroup:
    pool = RayResourcePool([n], use_gpu=False)
    return RayWorkerGroup(pool, RayClassWithInitArgs(ProbeWorker), call_timeout_s=REPORT_WITHIN_S)


@pytest.fixture
def two_workers(ray_cluster):
    wg = start_probe_workers(2)
    yield wg
    for worker in wg.workers:
        ray_cluster.kill(worker)
    wg.resource_pool.remove_placement_groups()


@pytest.fixture
def one_worker(ray_cluster):
    wg = start_probe_workers(1)
    yield wg
    ray_cluster.kill(wg.workers[0])
    wg.resource_pool.remove_placement_groups()


def test_process_exit_during_a_collective_is_reported_with_method_and_rank(two_workers):
    start = time.monotonic()
    with pytest.raises(WorkerDiedError) as info:
        two_workers.exit_on_rank(1)  # rank 1 dies; rank 0 is left waiting in all_reduce
    assert time.monotonic() - start < REPORT_WITHIN_S
    assert (info.value.method, info.value.rank) == ("exit_on_rank", 1)
    assert "exit_on_rank" in str(info.value) and "rank 1 of 2" in str(info.value)


def test_slow_call_times_out_and_killed_actor_fails_its_pending_call(one_worker, ray_cluster):
    start = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match=r"'sleep' timed out on rank 0 of 1[\s\S]*after 0.5 s"):
        one_worker.execute_all_async("sleep", 5.0).get(timeout_s=0.5)
    assert time.monotonic() - start < 5.0

    future = one_worker.execute_all_async("sleep", 300.0)
    ray_cluster.kill(one_worker.workers[0])
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match="'sleep' died on rank 0 of 1"):
        future.get()
    assert time.monotonic() - start < REPORT_WITHIN_S


class FailsToStart(Worker):
    def __init__(self):
        super().__init__()
        raise RuntimeError(f"cannot load the model on rank {self.rank}")


def test_constructor_error_surfaces_when_the_group_is_built(ray_cluster):
    pool = RayResourcePool([1], use_gpu=False)
    expected = r"FailsToStart.__init__' raised on rank 0 of 1[\s\S]*cannot load the model on rank 0"
    with pytest.raises(WorkerError, match=expected):
        RayWorkerGroup(pool, RayClassWithInitArgs(FailsToStart))
    pool.remove_placement_groups()


def test_unschedulable_resource_pool_is_a_clear_error(ray_cluster):
    pool = RayResourcePool([2], use_gpu=False, num_cpus_per_process=1000, ready_timeout_s=1)
    with pytest.raises(RuntimeError, match="could not reserve"):
        pool.get_placement_groups()
