"""Every entry point sets up torch.distributed the same way: on GPU it selects the device among the visible ones and
joins with cpu:gloo,cuda:nccl (the SFT path used to build an nccl-only group on cuda:LOCAL_RANK)."""
import pytest
import torch
import torch.distributed as dist

from verl.single_controller.base import Worker
from verl.utils.fsdp_utils import ensure_process_group

RAY_RANK_1 = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": "1",
              "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29511"}


@pytest.fixture
def fake_cuda(monkeypatch):
    """A process that believes it has GPUs: records set_device and init_process_group instead of doing them."""
    calls = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.setdefault("set_device", index))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.setdefault("init", kw))
    for key, value in RAY_RANK_1.items():
        monkeypatch.setenv(key, value)
    return calls


def test_sft_entry_point_on_gpu_uses_the_visible_device_and_gloo_next_to_nccl(fake_cuda):
    ensure_process_group("cuda")
    assert fake_cuda["set_device"] == 0
    assert fake_cuda["init"]["backend"] == "cpu:gloo,cuda:nccl"
    assert fake_cuda["init"]["init_method"] == "env://"


def test_worker_entry_point_makes_the_same_choice(fake_cuda):
    Worker().init_distributed("cuda")
    assert fake_cuda["set_device"] == 0
    assert fake_cuda["init"]["backend"] == "cpu:gloo,cuda:nccl"


def test_without_a_rendezvous_a_one_rank_group_is_made(fake_cuda, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key)
    ensure_process_group("cpu")
    init = fake_cuda["init"]
    assert (init["backend"], init["rank"], init["world_size"]) == ("gloo", 0, 1)
    assert init["init_method"].startswith("tcp://127.0.0.1:")
    assert "set_device" not in fake_cuda
