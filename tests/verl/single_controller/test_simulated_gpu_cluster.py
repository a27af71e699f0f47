"""Ray with simulated GPUs on CPU: what each GPU worker sees and decides, and the trainer deciding the device from
the cluster rather than from its own (GPU-less) process."""
from simulated_cluster_testlib import run_scenario


def test_each_gpu_actor_uses_its_only_visible_device_and_the_driver_follows_the_cluster(tmp_path):
    result = run_scenario("gpus", tmp_path)
    ranks = sorted(result["ranks"], key=lambda r: r["rank"])
    assert [r["local_rank"] for r in ranks] == [0, 1]
    assert sorted(r["visible"] for r in ranks) == ["0", "1"]  # Ray masks each actor to its own GPU
    assert all(r["visible"] == r["ray_gpu_ids"][0] for r in ranks)
    for r in ranks:
        assert r["device_index"] == 0, r  # rank 1 must not ask for cuda:1: it sees one device
        assert r["vllm_local_rank"] == "0", r
        assert r["backend"] == "cpu:gloo,cuda:nccl"
        assert r["moves_optimizer_state"] is False  # param_offload: Adam's state stays on the CPU with the step

    assert result["trainer_device"] == "cuda" and result["actor_device"] == "cuda"
    assert "cuda" in result["worker_error"] and "is_available() is False" in result["worker_error"]


def test_cuda_on_a_cluster_without_gpus_fails_before_any_worker_starts(tmp_path):
    result = run_scenario("no-gpus", tmp_path)
    assert "trainer.device=cuda needs 2 GPU(s)" in result["error"]
    assert "the Ray cluster" in result["error"] and "has 0" in result["error"]
    assert result["actors"] == 0
