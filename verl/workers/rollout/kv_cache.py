"""A KV cache for the HF rollout that is allocated once and grows by views.

transformers' ``DynamicLayer`` appends each new token with ``torch.cat``, which copies the whole cache of every
layer at every decoding step (quadratic in the response length) and allocates a fresh, ever larger buffer each
time, so the allocator cannot reuse memory: on CPU that was ~40% of generation (a 2-layer model, 32 sequences of
96 tokens). ``PreallocatedLayer`` writes each token into a buffer sized for the whole generation and hands out the
filled prefix as a view; attention still runs over the real length only (unlike ``StaticLayer``, which attends
over its full capacity).
"""
from __future__ import annotations

from typing import Optional

import torch

try:  # the layered cache API (transformers >= 4.56); older versions keep their default cache
    from transformers.cache_utils import DynamicCache, DynamicLayer
except ImportError:  # pragma: no cover - depends on the installed transformers
    DynamicCache = DynamicLayer = None


if DynamicLayer is not None:

    class PreallocatedLayer(DynamicLayer):
        """A full-attention layer cache with room for ``capacity`` positions: keys / values [B, H, capacity, D]
        allocated at the first update; ``keys`` / ``values`` are views of the filled prefix [B, H, length, D]."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = int(capacity)
            self._key_buffer = self._value_buffer = None

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            batch, heads, _, head_dim = key_states.shape
            self.device = key_states.device
            self._key_buffer = key_states.new_empty(batch, heads, self.capacity, head_dim)
            self._value_buffer = value_states.new_empty(batch, value_states.shape[1], self.capacity,
                                                        value_states.shape[-1])
            self.keys, self.values = self._key_buffer[:, :, :0], self._value_buffer[:, :, :0]
            self.is_initialized = True

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            """Append key/value states [B, H, q, D]; returns all keys and values so far [B, H, length, D]."""
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start = self.keys.shape[-2]
            end = start + key_states.shape[-2]
            if end > self.capacity:
                raise ValueError(f"PreallocatedLayer: {end} positions do not fit the capacity of {self.capacity}")
            self._key_buffer[:, :, start:end] = key_states
            self._value_buffer[:, :, start:end] = value_states
            self.keys, self.values = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]
            return self.keys, self.values


def preallocated_cache(model_config, capacity: int):
    """A ``DynamicCache`` for ``model_config`` whose full-attention layers are ``PreallocatedLayer(capacity)``
    (sliding-window and other special layers keep transformers' own kind); None when the installed transformers has
    no layered cache API, so the model builds its default cache."""
    if DynamicLayer is None:
        return None
    cache = DynamicCache(config=model_config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def decode_cache(module, capacity: int) -> Optional[object]:
    """The cache ``generate_batch`` starts with: preallocated for ``capacity`` positions (prompt + response)
    when the model's config can describe its layers, else None (the model's default)."""
    config = getattr(module, "config", None)
    if config is None or not hasattr(config, "get_text_config"):
        return None
    try:
        return preallocated_cache(config, capacity)
    except (TypeError, ValueError, KeyError, AttributeError):  # a config transformers' cache cannot read
        return None
