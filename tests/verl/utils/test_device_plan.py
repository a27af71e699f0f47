"""A worker's device decisions for GPU inputs, on a machine without a GPU: device index among the visible GPUs,
the LOCAL_RANK vLLM gets, the process-group backend, offload and mixed precision, and the cluster-level device."""
import pytest
import torch

from verl.utils.device_plan import cuda_device_index, plan_device, process_group_backend, resolve_cluster_device

RAY_RANK_1 = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "1"}


def test_a_ray_actor_masked_to_one_gpu_uses_cuda_0_whatever_its_local_rank():
    plan = plan_device("cuda", RAY_RANK_1)
    assert plan.device_index == 0
    assert plan.vllm_local_rank == 0  # vLLM's external launcher builds cuda:{LOCAL_RANK}: cuda:1 does not exist here


def test_torchrun_with_every_gpu_visible_uses_the_local_rank():
    env = {"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert plan_device("cuda", env).device_index == 3
    assert plan_device("cuda", {"LOCAL_RANK": "2"}, visible_count=8).vllm_local_rank == 2


def test_a_local_rank_outside_the_visible_gpus_is_a_clear_error():
    with pytest.raises(RuntimeError, match="LOCAL_RANK=2 but this process sees only 2"):
        cuda_device_index(2, 2)
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        plan_device("cuda", {"LOCAL_RANK": "0", "CUDA_VISIBLE_DEVICES": ""})


def test_backend_pairs_gloo_with_nccl_on_gpu():
    assert process_group_backend("cuda") == "cpu:gloo,cuda:nccl"  # CPU-offloaded shards still reduce
    assert process_group_backend("cpu") == "gloo"
    with pytest.raises(ValueError, match="'tpu'"):
        process_group_backend("tpu")


def test_param_offload_keeps_the_optimizer_state_on_the_cpu():
    both = plan_device("cuda", RAY_RANK_1, {"param_offload": True, "optimizer_offload": True})
    assert both.param_offload and not both.optimizer_offload  # nothing to move: the step runs on the CPU

    only_optimizer = plan_device("cuda", RAY_RANK_1, {"optimizer_offload": True})
    assert only_optimizer.optimizer_offload and not only_optimizer.param_offload

    on_cpu = plan_device("cpu", {}, {"param_offload": True, "optimizer_offload": True})
    assert not on_cpu.param_offload and not on_cpu.optimizer_offload and on_cpu.device_index is None


def test_mixed_precision_is_bf16_compute_fp32_reduce_on_gpu_and_fp32_on_cpu():
    gpu = plan_device("cuda", RAY_RANK_1)
    assert (gpu.param_dtype, gpu.reduce_dtype) == (torch.bfloat16, torch.float32)
    cpu = plan_device("cpu", {})
    assert (cpu.param_dtype, cpu.reduce_dtype) == (torch.float32, torch.float32)
    chosen = plan_device("cpu", {}, {"mixed_precision": {"param_dtype": "bf16", "reduce_dtype": "fp32"}})
    assert chosen.param_dtype == torch.bfloat16


def test_the_cluster_not_the_driver_decides_the_device():
    assert resolve_cluster_device("auto", gpus=2, world_size=2, where="the Ray cluster") == "cuda"
    assert resolve_cluster_device("auto", gpus=0, world_size=2, where="the Ray cluster") == "cpu"
    assert resolve_cluster_device("cpu", gpus=8, world_size=2, where="the Ray cluster") == "cpu"
    with pytest.raises(RuntimeError, match=r"needs 2 GPU\(s\).*the Ray cluster has 0; use trainer.device=cpu"):
        resolve_cluster_device("cuda", gpus=0, world_size=2, where="the Ray cluster")
    with pytest.raises(RuntimeError, match=r"needs 4 GPU\(s\).*has 2; lower"):
        resolve_cluster_device("auto", gpus=2, world_size=4, where="the Ray cluster")
