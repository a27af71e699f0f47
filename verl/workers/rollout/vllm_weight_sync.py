"""Weight sync from the FSDP2 actor into the in-process vLLM engine (verl's ``FSDPVLLMShardingManager``).

Before each generation the actor's parameters are streamed into the engine one at a time: each FSDP2 shard is
all-gathered into a full tensor, handed to vLLM, and dropped once vLLM has copied it into its own (possibly
tensor-parallel-sharded, repacked) storage. vLLM's in-place reload processes a layer as soon as all of that layer's
weights have arrived, so at any moment at most one decoder layer exists as full tensors beside the engine's copy:
the whole model is never materialised twice.

The push goes through the worker's ``reload_weights(weights_iterator=...)`` (via ``LLM.collective_rpc``). It has to be
ONE call with the whole model: vLLM re-initialises every layer at the start of a reload, and a layer whose weights
are split across calls (q/k/v, gate/up) comes out wrong. The model's own ``load_weights`` is not used: on CPU vLLM
repacks linear weights after loading, and ``load_weights`` alone leaves them stale; for the same reason a tied lm_head
(which the reload skips) is re-packed afterwards. The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0),
so the iterator is consumed lazily, gather by gather; every rank of the actor's process group runs the same gathers in
the same order. After each push the prefix cache is reset: its KV was computed with the old weights.

A LoRA actor is pushed MERGED (``iter_sync_weights``: W + alpha/r * B @ A per adapted layer, streamed as above), so
the engine runs a plain model. The alternative, vLLM's own LoRA support (``enable_lora``, the adapter registered per
sync with ``add_lora``), moves only the adapter (2.2 MB instead of 44 MB, 0.007 s instead of 1.5 s per sync on an
11M-parameter Qwen2 on CPU) but every generation then runs vLLM's LoRA kernels: 4.6x slower generation there
(``scripts/bench/lora_vllm_sync.py``; both give the same greedy tokens). Merged also keeps the engine independent of
the adapter (no max_lora_rank, no LoRA memory in the engine, tensor parallelism unchanged) and identical to the HF
export. On GPU the balance (a 7B bf16 push vs the kernels' overhead) is unmeasured.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator, Optional

import torch
from torch import nn

from verl.utils.checkpoint.lora_weights import is_peft_model, lora_scaling, merge_lora_weights
from verl.utils.fsdp_utils import full_tensor

logger = logging.getLogger(__name__)

# Prefixes that module wrappers add to parameter names; vLLM expects the plain HF names.
_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def hf_param_name(name: str) -> str:
    """The HF checkpoint name of a parameter of a (possibly wrapped) module: wrapper prefixes removed."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def iter_full_weights(module: nn.Module, dtype: Optional[torch.dtype] = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (hf_name, full tensor) for every parameter of ``module`` in registration order, so the parameters of
    one decoder layer come out consecutively. Tied parameters (lm_head = embed_tokens) appear once, as
    ``named_parameters`` reports them. Collective when the module is FSDP2-sharded: all ranks must consume it."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            tensor = full_tensor(param.detach())
            if dtype is not None and tensor.dtype != dtype:
                tensor = tensor.to(dtype)
            yield hf_param_name(name), tensor


def iter_sync_weights(module: nn.Module, dtype: Optional[torch.dtype] = None) -> Iterator[tuple[str, torch.Tensor]]:
    """``iter_full_weights`` as the engine wants them: a LoRA (peft) actor's adapters merged into their base weights
    (W + alpha/r * B @ A in fp32, then ``dtype``) under the plain HF names, so the engine runs an ordinary model.
    Collective like ``iter_full_weights``."""
    if not is_peft_model(module):
        yield from iter_full_weights(module, dtype)
        return
    for name, tensor in merge_lora_weights(iter_full_weights(module), lora_scaling(module)):
        yield name, tensor.to(dtype) if dtype is not None and tensor.dtype != dtype else tensor


def _tied_groups(model: nn.Module) -> list[list[nn.Module]]:
    """Groups of vLLM modules that share one weight Parameter (a tied lm_head and its embedding)."""
    groups: dict[int, list[nn.Module]] = {}
    for module in model.modules():
        weight = module._parameters.get("weight", None)
        if weight is not None and getattr(module, "quant_method", None) is not None:
            groups.setdefault(id(weight), []).append(module)
    return [mods for mods in groups.values() if len(mods) > 1]


class _ExpectedReloadWarnings(logging.Filter):
    """Drops vLLM's "<Layer>: Failed to load weights" warnings for layers that have no checkpoint weights of their
    own (rotary embedding caches, a tied lm_head refreshed right after); any other layer still warns."""

    def __init__(self, layer_names: set[str]):
        super().__init__()
        self.layer_names = layer_names

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.endswith("Failed to load weights") and message.split(":")[0] in self.layer_names)


def refresh_tied_modules(model: nn.Module) -> int:
    """Re-run weight post-processing on modules that share their weight with another (a tied lm_head).

    vLLM skips ``lm_head.weight`` of a tied model when loading, so a reload only re-processes the embedding; on CPU
    the lm_head keeps a GEMM handle packed from the OLD weight and keeps producing the old logits. Returns how many
    modules were refreshed.
    """
    refreshed = 0
    for modules in _tied_groups(model):
        for module in modules:
            module.quant_method.process_weights_after_loading(module)
            refreshed += 1
    return refreshed


def reload_in_worker(worker, weights_iterator) -> None:
    """Runs inside vLLM's worker (through ``collective_rpc``): reload every weight in place from the iterator, then
    refresh tied modules. ``worker`` is vLLM's worker wrapper (or the worker itself)."""
    worker = getattr(worker, "worker", None) or worker
    model = worker.get_model()
    quiet = {"RotaryEmbedding"} | {type(m).__name__ for mods in _tied_groups(model) for m in mods[1:]}
    vllm_logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    expected = _ExpectedReloadWarnings(quiet)
    vllm_logger.addFilter(expected)
    try:
        worker.reload_weights(weights_iterator=weights_iterator)
    finally:
        vllm_logger.removeFilter(expected)
    refresh_tied_modules(model)


class FSDPVLLMShardingManager:
    """Context manager around generation: on enter, wake the engine's weights, push the actor's current weights,
    wake the KV cache; on exit, put the engine to sleep (GPU only) so training gets the memory back.

    Args:
        module: the actor's model (FSDP2-sharded or plain) whose parameters carry HF names.
        rollout: the ``vLLMRollout`` whose ``inference_engine`` receives the weights.
        sync_dtype: dtype the gathered tensors are cast to before the push (default: the engine's dtype, which
            halves the gathered bytes for a bf16 engine fed by an fp32 actor).

    After each push ``last_sync_seconds`` and ``last_sync_bytes`` describe it; ``metrics()`` returns them under
    verl-style names.
    """

    def __init__(self, module: nn.Module, rollout, sync_dtype: Optional[torch.dtype] = None):
        self.module = module
        self.rollout = rollout
        self.sync_dtype = sync_dtype if sync_dtype is not None else _engine_dtype(rollout.inference_engine)
        self.last_sync_seconds = 0.0
        self.last_sync_bytes = 0
        self.num_syncs = 0

    def sync_weights(self) -> None:
        """Push every parameter of ``module`` into the engine (one reload, streamed tensor by tensor)."""
        start = time.perf_counter()
        counter = {"bytes": 0, "count": 0}

        def counted():
            for name, tensor in iter_sync_weights(self.module, self.sync_dtype):
                counter["bytes"] += tensor.numel() * tensor.element_size()
                counter["count"] += 1
                yield name, tensor

        weights = counted()
        try:
            self.rollout.inference_engine.collective_rpc(reload_in_worker, kwargs={"weights_iterator": weights})
        finally:
            weights.close()
        if counter["count"] == 0:
            raise RuntimeError(f"weight sync pushed no parameters: {type(self.module).__name__} has none")
        # cached prompt KV was computed with the old weights
        self.rollout.inference_engine.reset_prefix_cache()
        self.rollout.weights_loaded = True
        self.num_syncs += 1
        self.last_sync_seconds = time.perf_counter() - start
        self.last_sync_bytes = counter["bytes"]
        logger.info(
            "pushed %d tensors (%.1f MB) into vLLM in %.2fs",
            counter["count"],
            self.last_sync_bytes / 1e6,
            self.last_sync_seconds,
        )

    def metrics(self) -> dict[str, float]:
        """Metrics of the last push: timing_s/sync_weights (s) and perf/sync_weights_mb."""
        return {
            "timing_s/sync_weights": self.last_sync_seconds,
            "perf/sync_weights_mb": self.last_sync_bytes / 1e6,
        }

    def __enter__(self):
        self.rollout.wake_up(tags=["weights"])
        self.sync_weights()
        self.rollout.wake_up(tags=["kv_cache"])
        return self

    def __exit__(self, exc_type, exc, tb):
        self.rollout.sleep()
        return False


def _engine_dtype(engine) -> Optional[torch.dtype]:
    try:
        return engine.llm_engine.model_config.dtype
    except AttributeError:
        return None
