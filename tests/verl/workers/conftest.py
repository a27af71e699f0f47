"""Fixtures for the FSDP2 worker tests: one single-rank gloo process group per session, tiny-model facts."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny matrices gain nothing from intra-op threads, and on a shared 2-core machine the second thread mostly
    waits (the suite ran ~3x slower with it); restored after each module for other tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cpu_group():
    """torch.distributed initialised as rank 0 of 1 (gloo), as the in-process backend runs the workers."""
    from verl.utils.fsdp_utils import ensure_process_group

    ensure_process_group("cpu")


@pytest.fixture(scope="session")
def tiny_vocab(tiny_model_dir) -> int:
    """The tiny model's vocabulary size."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_model_dir).vocab_size
