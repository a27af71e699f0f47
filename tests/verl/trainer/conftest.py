"""Fixtures for trainer tests: one torch thread, and a process left as it was found by the in-process backend."""
import os

import pytest


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
