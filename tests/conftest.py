"""Shared pytest fixtures. Tests import packages from the repository root (pytest rootdir), no __init__.py."""
import os

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A folder with a tiny Qwen2 causal LM + ChatML tokenizer (2 layers, hidden 64, 2 heads of head_dim 32).

    Built once per test session from verl.utils.tiny_model's built-in corpus with seed 0, so it is the
    same model every run; load it with AutoTokenizer / AutoModelForCausalLM.
    """
    from verl.utils.tiny_model import save_tiny_model

    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_model")), layers=2, hidden=64, heads=2, seed=0)


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run many times faster on one thread (no waiting for a busy core)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def clean_process():
    """Undo what an in-process run leaves behind: rank env vars and the default process group (if it made one)."""
    import torch.distributed as dist

    saved = dict(os.environ)
    had_group = dist.is_initialized()
    yield
    if dist.is_initialized() and not had_group:
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(saved)
