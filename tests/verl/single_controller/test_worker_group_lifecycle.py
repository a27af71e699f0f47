"""Worker-group lifecycle: several groups in one driver (unique Ray names), shutdown that gives resources back,
and ranks seeded from one seed, on the Ray and in-process backends."""
import random
import time

import numpy as np
import pytest
import torch
from single_controller_test_workers import ProbeWorker

from verl.single_controller import ClassWithInitArgs, make_worker_groups
from verl.single_controller.local import LocalWorkerGroup
from verl.single_controller.ray import RayClassWithInitArgs, RayResourcePool, RayWorkerGroup
from verl.utils.seeding import seed_everything


def free_cpus(ray) -> float:
    return ray.available_resources().get("CPU", 0.0)


def wait_for_free_cpus(ray, expected: float, timeout_s: float = 30.0) -> float:
    """Ray updates its resource view asynchronously: poll until ``expected`` CPUs are free (or time is up)."""
    deadline = time.monotonic() + timeout_s
    while free_cpus(ray) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return free_cpus(ray)


def all_cpus_free(ray) -> float:
    """The free CPUs once earlier tests' releases have reached Ray's resource view (all of them, here)."""
    return wait_for_free_cpus(ray, ray.cluster_resources()["CPU"])


def placement_group_names(pool) -> list[str]:
    import ray

    return [ray.util.placement_group_table(pg)["name"] for pg in pool.get_placement_groups()]


def expected_draws(seed: int) -> tuple[float, float, float]:
    """What ProbeWorker.draw_random returns first in a process seeded with ``seed`` (the driver's RNG is kept)."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    seed_everything(seed)
    draws = (random.random(), float(np.random.rand()), torch.rand(1).item())
    random.setstate(state[0]), np.random.set_state(state[1]), torch.set_rng_state(state[2])
    return draws


def test_two_factory_built_groups_live_side_by_side_and_given_names_are_kept(ray_cluster):
    """Same pool name ("global_pool") twice in one driver, e.g. two trainers: Ray names must still be unique."""
    roles = {"actor": ClassWithInitArgs(ProbeWorker, role="actor")}
    first = make_worker_groups("ray", roles)["actor"]
    with first:
        second = make_worker_groups("ray", roles)["actor"]
        with second:
            assert first.whoami()[0]["pid"] != second.whoami()[0]["pid"]
            names = placement_group_names(first.resource_pool) + placement_group_names(second.resource_pool)
            assert len(set(names)) == 2 and all(n.startswith("global_pool_") for n in names), names
    # a name the user chose is used as given (Ray then enforces its uniqueness)
    pool = RayResourcePool([1], use_gpu=False, name_prefix="my_job_")
    assert placement_group_names(pool) == ["my_job_verl_pg_0"]
    pool.remove_placement_groups()


def test_ranks_are_seeded_with_seed_plus_rank_and_shutdown_gives_the_cpus_back(ray_cluster):
    before = all_cpus_free(ray_cluster)
    roles = {role: ClassWithInitArgs(ProbeWorker, role=role) for role in ("actor", "critic")}
    views = make_worker_groups("ray", roles, resource_pool_spec={"global_pool": [2]}, seed=7)
    assert views["actor"].draw_random() == [pytest.approx(expected_draws(7)), pytest.approx(expected_draws(8))]
    actors = views["actor"].workers
    assert wait_for_free_cpus(ray_cluster, before - 2) == before - 2
    views["critic"].shutdown()  # any view stops the whole colocated group
    views["actor"].shutdown()  # idempotent
    assert wait_for_free_cpus(ray_cluster, before) == before
    for view in views.values():
        assert view.is_shut_down and view.world_size == 0
        with pytest.raises(RuntimeError, match="was shut down"):
            view.whoami()
    with pytest.raises(ray_cluster.exceptions.RayActorError):
        ray_cluster.get(actors[0].__ray_ready__.remote(), timeout=30)


def test_a_shared_pool_is_released_with_its_last_group(ray_cluster):
    before = all_cpus_free(ray_cluster)
    pool = RayResourcePool([1], use_gpu=False, max_colocate_count=2)
    first = RayWorkerGroup(pool, RayClassWithInitArgs(ProbeWorker, role="first"))
    second = RayWorkerGroup(pool, RayClassWithInitArgs(ProbeWorker, role="second"))
    first.shutdown()
    assert second.whoami()[0]["role"] == "second"  # its placement group is still there
    second.shutdown()
    assert wait_for_free_cpus(ray_cluster, before) == before


def test_in_process_worker_is_seeded_like_rank_zero_and_shutdown_is_harmless(clean_local_process):
    with LocalWorkerGroup(None, ClassWithInitArgs(ProbeWorker), seed=7) as wg:
        assert wg.draw_random() == [pytest.approx(expected_draws(7))]
    assert wg.is_shut_down
    wg.shutdown()
    with pytest.raises(RuntimeError, match="was shut down"):
        wg.whoami()
