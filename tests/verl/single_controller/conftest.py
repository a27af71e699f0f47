"""Fixtures for the single-controller tests: one Ray session for all of them, clean process state for local runs."""
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance shared by every test here (starting Ray costs seconds).

    CPUs are oversubscribed on purpose: worker groups reserve whole-CPU bundles, the machine has few cores.
    Ray worker processes import the test workers from this folder (tests are not a package).
    """
    import ray

    started = False
    if not ray.is_initialized():
        pythonpath = os.pathsep.join(p for p in [str(HERE), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p)
        ray.init(num_cpus=8, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
        started = True
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def clean_local_process():
    """Undo what the in-process backend does to this process: rank env vars and the default process group."""
    saved = dict(os.environ)
    yield
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(saved)
