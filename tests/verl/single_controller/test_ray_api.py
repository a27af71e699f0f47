"""verl's own way of building Ray worker groups works unchanged (ray.remote classes, options, spawn)."""
import ray
from single_controller_test_workers import EnvReportingWorker, ProbeWorker

from verl.single_controller.ray import (
    RayClassWithInitArgs,
    RayResourcePool,
    RayWorkerGroup,
    create_colocated_worker_cls,
)


def test_verl_style_colocated_group_with_actor_options(ray_cluster):
    env_role = RayClassWithInitArgs(cls=ray.remote(EnvReportingWorker))
    env_role.update_options({"runtime_env": {"env_vars": {"RECR1_TEST_FLAG": "on"}}})
    class_dict = {"probe": RayClassWithInitArgs(cls=ray.remote(ProbeWorker), role="probe", scale=3), "env": env_role}
    pool = RayResourcePool(process_on_nodes=[1], use_gpu=False, max_colocate_count=1)
    wg_dict = RayWorkerGroup(resource_pool=pool, ray_cls_with_init=create_colocated_worker_cls(class_dict))
    try:
        views = wg_dict.spawn(prefix_set=class_dict.keys())
        assert views["env"].getenv("RECR1_TEST_FLAG") == ["on"]
        assert views["env"].getenv("WORLD_SIZE") == ["1"]
        assert views["probe"].whoami()[0]["role"] == "probe"
        assert wg_dict.probe_whoami()[0]["pid"] == views["probe"].whoami()[0]["pid"]  # verl's prefixed names
    finally:
        for worker in wg_dict.workers:
            ray.kill(worker)
        pool.remove_placement_groups()
