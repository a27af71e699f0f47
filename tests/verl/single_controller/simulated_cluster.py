"""GPU and multi-node Ray clusters simulated on one CPU machine, each scenario in its own process (its own Ray).

    python simulated_cluster.py SCENARIO [WORK_DIR]    -> prints one JSON line: RESULT {...}

Scenarios:
  gpus       Ray started with 2 GPUs that do not exist: a 2-rank GPU worker group reports what each actor sees
             (CUDA_VISIBLE_DEVICES, LOCAL_RANK) and the device plan it computes; then the trainer, on this GPU-less
             driver, decides the workers' device from the cluster and hands them cuda.
  no-gpus    trainer.device=cuda on a Ray cluster without GPUs: the error before any worker starts.
  two-nodes  a 2-node cluster (one CPU each, so each node's placement group must take its own node): where each rank
             runs, its LOCAL_RANK and rendezvous address; then a 2-step GRPO run across the two nodes on gloo through
             main_ppo, with a checkpoint.
The classes here reach the Ray workers by value (this file runs as __main__).
"""
from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "trainer"))  # trainer_testlib

import ray  # noqa: E402

from verl.single_controller.base import Worker  # noqa: E402
from verl.single_controller.base.decorator import Dispatch, register  # noqa: E402


class DevicePlanReporter(Worker):
    """What a GPU actor sees and decides: Ray's CUDA_VISIBLE_DEVICES, the worker group's LOCAL_RANK, the device plan,
    and the LOCAL_RANK vLLM's external launcher would be given."""

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def report(self) -> dict:
        from verl.utils.device_plan import plan_device
        from verl.workers.rollout.vllm_rollout import external_launcher_env

        self.init_distributed("cpu")  # the launcher env reads rank / world size from the process group
        plan = plan_device("cuda", fsdp_config={"param_offload": True, "optimizer_offload": True})
        with external_launcher_env(plan.vllm_local_rank):
            vllm_local_rank = os.environ["LOCAL_RANK"]
        return {"rank": self.rank, "local_rank": self.local_rank, "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()], "device_index": plan.device_index,
                "backend": plan.backend, "vllm_local_rank": vllm_local_rank,
                "moves_optimizer_state": plan.optimizer_offload}


class NodeReporter(Worker):
    """Where a rank runs and the rendezvous it was given."""

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def report(self) -> dict:
        context = ray.get_runtime_context()
        return {"rank": self.rank, "node_id": context.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                "local_rank": self.local_rank, "local_world_size": self.local_world_size,
                "master": list(self.get_master_addr_port())}


def _report(worker_cls, process_on_nodes: list[int], use_gpu: bool) -> list[dict]:
    from verl.single_controller.base.worker_group import ClassWithInitArgs
    from verl.single_controller.ray import RayResourcePool, RayWorkerGroup

    group = RayWorkerGroup(RayResourcePool(process_on_nodes, use_gpu=use_gpu), ClassWithInitArgs(worker_cls))
    try:
        return group.report()
    finally:
        group.shutdown()


def _toy_config(work_dir: str, **extra):
    from trainer_testlib import toy_overrides

    from verl.trainer.main_ppo import load_config
    from verl.utils.tiny_model import save_tiny_model

    model_dir = os.path.join(work_dir, "model")
    if not os.path.isdir(model_dir):
        save_tiny_model(model_dir, seed=0)
    settings = {"trainer.backend": "ray", "trainer.n_gpus_per_node": 2, "actor_rollout_ref.rollout.n": 4,
                "actor_rollout_ref.actor.ppo_mini_batch_size": 2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 4,
                "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 4, **extra}
    return load_config(toy_overrides(model_dir, work_dir, **settings))


def scenario_gpus(work_dir: str) -> dict:
    from verl.single_controller.base.errors import WorkerError
    from verl.trainer.main_ppo import create_trainer

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False)
    ranks = _report(DevicePlanReporter, [2], use_gpu=True)
    trainer = create_trainer(_toy_config(work_dir, **{"trainer.device": "auto"}))
    worker_error = None
    try:
        trainer.init_workers()  # the workers are told cuda, which this machine does not have: their error shows it
    except WorkerError as e:
        worker_error = str(e)
    finally:
        trainer.shutdown()
    return {"ranks": ranks, "trainer_device": trainer.config.trainer.device,
            "actor_device": trainer.config.actor_rollout_ref.device, "worker_error": worker_error}


def scenario_no_gpus(work_dir: str) -> dict:
    from verl.trainer.main_ppo import create_trainer

    ray.init(num_cpus=2, include_dashboard=False)
    trainer = create_trainer(_toy_config(work_dir, **{"trainer.device": "cuda"}))
    try:
        trainer.init_workers()
    except RuntimeError as e:
        return {"error": str(e), "actors": len(ray.util.list_named_actors())}
    return {"error": None}


def scenario_two_nodes(work_dir: str) -> dict:
    from ray.cluster_utils import Cluster

    from verl.trainer.main_ppo import run_ppo

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    try:
        placement = _report(NodeReporter, [1, 1], use_gpu=False)
        config = _toy_config(work_dir, **{
            "trainer.device": "cpu", "trainer.nnodes": 2, "trainer.n_gpus_per_node": 1,
            "trainer.total_training_steps": 2, "trainer.save_freq": 2, "trainer.balance_batch": True})
        metrics = run_ppo(config)
        nodes = len({n["NodeID"] for n in ray.nodes() if n["Alive"]})
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"placement": placement, "nodes": nodes, "step": metrics.get("training/global_step"),
            "pg_loss": metrics.get("actor/pg_loss"), "score": metrics.get("critic/score/mean"),
            "checkpoint": sorted(os.listdir(os.path.join(work_dir, "ckpt", "global_step_2", "actor")))}


SCENARIOS = {"gpus": scenario_gpus, "no-gpus": scenario_no_gpus, "two-nodes": scenario_two_nodes}

if __name__ == "__main__":
    result = SCENARIOS[sys.argv[1]](sys.argv[2])
    print("RESULT " + json.dumps(result), flush=True)
