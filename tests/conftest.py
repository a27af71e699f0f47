"""Shared pytest fixtures. Tests import packages from the repository root (pytest rootdir), no __init__.py."""
import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A folder with a tiny Qwen2 causal LM + ChatML tokenizer (2 layers, hidden 64, 2 heads of head_dim 32).

    Built once per test session from verl.utils.tiny_model's built-in corpus with seed 0, so it is the
    same model every run; load it with AutoTokenizer / AutoModelForCausalLM.
    """
    from verl.utils.tiny_model import save_tiny_model

    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_model")), layers=2, hidden=64, heads=2, seed=0)
