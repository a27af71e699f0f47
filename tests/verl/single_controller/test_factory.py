"""Building worker groups from config: backend choice, pools and role mapping (in-process backend, no Ray)."""
import pytest
from single_controller_test_workers import ProbeWorker

from verl.single_controller import ClassWithInitArgs, make_resource_pool, make_worker_groups


def test_roles_mapped_to_separate_pools_run_in_separate_workers(clean_local_process):
    views = make_worker_groups(
        "local",
        {
            "actor_rollout": ClassWithInitArgs(ProbeWorker, role="actor_rollout"),
            "ref": ClassWithInitArgs(ProbeWorker, role="ref"),
            "critic": ClassWithInitArgs(ProbeWorker, role="critic"),
        },
        resource_pool_spec={"actor_pool": [1], "critic_pool": [1]},
        mapping={"actor_rollout": "actor_pool", "ref": "actor_pool", "critic": "critic_pool"},
    )
    assert sorted(views) == ["actor_rollout", "critic", "ref"]
    assert views["actor_rollout"].workers == views["ref"].workers  # colocated
    assert views["critic"].workers != views["actor_rollout"].workers
    assert [v.role for v in views.values()] == list(views)
    assert views["ref"].whoami()[0]["role"] == "ref"


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown single-controller backend 'mpi'"):
        make_resource_pool("mpi", [1])
    with pytest.raises(ValueError, match="world size 1 only"):
        make_resource_pool("local", [2])
    with pytest.raises(KeyError, match="unknown pools"):
        make_worker_groups("local", {"critic": ClassWithInitArgs(ProbeWorker)}, {"p": [1]}, mapping={"critic": "q"})
    with pytest.raises(TypeError, match="role 'x' class dict is not a Worker"):
        make_worker_groups("local", {"x": ClassWithInitArgs(dict)})
