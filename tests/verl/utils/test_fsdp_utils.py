"""fsdp_utils helpers that need no process group: what the HF export leaves out of a tied model's state dict."""
import pytest
import torch

from verl.utils.fsdp_utils import drop_tied_output_embeddings


@pytest.fixture
def tied_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert model.config.tie_word_embeddings
    return model


def gathered_state(model) -> dict:
    """Like a gathered FSDP state dict: every key, each its own copy (so save_pretrained cannot see the tie)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_tied_output_embedding_is_left_out_untied_one_kept(tied_model):
    state = gathered_state(tied_model)
    assert "lm_head.weight" in state
    assert set(drop_tied_output_embeddings(tied_model, state)) == set(state) - {"lm_head.weight"}
    tied_model.config.tie_word_embeddings = False
    assert set(drop_tied_output_embeddings(tied_model, state)) == set(state)


def test_a_broken_tie_is_an_error_not_a_silent_change(tied_model):
    state = gathered_state(tied_model)
    state["lm_head.weight"] = state["lm_head.weight"] + 1
    with pytest.raises(ValueError, match="lm_head.weight differs from model.embed_tokens.weight"):
        drop_tied_output_embeddings(tied_model, state)
