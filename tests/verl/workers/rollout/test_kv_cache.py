"""The rollout's preallocated KV cache: the same logits as transformers' default cache, no regrowth, clear limits."""
import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from verl.workers.rollout.kv_cache import PreallocatedLayer, decode_cache, preallocated_cache
from workers_testlib import left_padded_prompts


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def _decode(model, cache, ids, mask, pos, steps):
    """Greedy decoding step by step; returns the logits of every step [steps, B, V] and the cache."""
    kwargs = {} if cache is None else {"cache": cache}
    logits = []
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kwargs)
        for _ in range(steps):
            logits.append(out.logits[:, -1])
            token = logits[-1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            out = model(input_ids=token, attention_mask=mask, position_ids=pos, use_cache=True, cache=out.cache)
    return torch.stack(logits), out.cache


def test_preallocated_cache_gives_the_default_caches_logits_without_regrowing(model, tiny_vocab):
    ids, mask, pos = left_padded_prompts(4, 7, tiny_vocab, seed=3)
    cache = decode_cache(model, capacity=7 + 6)
    assert cache is not None and all(isinstance(layer, PreallocatedLayer) for layer in cache.layers)
    reference, _ = _decode(model, None, ids, mask, pos, steps=6)
    logits, used = _decode(model, cache, ids, mask, pos, steps=6)
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    layer = used.layers[0]
    assert layer.keys.shape[-2] == 7 + 6 and layer.keys.data_ptr() == layer._key_buffer.data_ptr()  # a view


def test_overflowing_the_capacity_is_a_clear_error(model, tiny_vocab):
    ids, mask, pos = left_padded_prompts(2, 5, tiny_vocab, seed=4)
    with pytest.raises(ValueError, match="capacity of 4"):
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                  cache=decode_cache(model, capacity=4))


def test_sliding_window_layers_keep_transformers_own_cache():
    config = Qwen2Config(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, num_key_value_heads=2,
                         intermediate_size=64, vocab_size=50, use_sliding_window=True, sliding_window=4,
                         max_window_layers=1)
    layers = preallocated_cache(config, capacity=16).layers
    assert isinstance(layers[0], PreallocatedLayer) and not isinstance(layers[1], PreallocatedLayer)
