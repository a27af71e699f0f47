"""FSDP2 building blocks shared by the actor, reference and critic workers.

Everything here uses the composable FSDP2 API (``torch.distributed.fsdp.fully_shard``); FSDP1 is not
used anywhere (its state-dict gather with CPU offload crashes on CPU).

- process group / device mesh set-up that works under Ray (env vars) and in-process (one rank);
- ``apply_fsdp2``: ``fully_shard`` each decoder layer, then the root module;
- mixed-precision and CPU-offload policies from a verl ``fsdp_config``;
- gradient clipping over sharded (DTensor) gradients;
- ``fsdp2_full_params``: gather full parameters for generation and free them afterwards;
- optimizer-state offload, full (unsharded) state dict for HF export (without a tied lm_head.weight).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.tensor import DTensor

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def get_device_name(config=None) -> str:
    """The device a worker runs on: ``config.device`` if set, else "cuda" when available, else "cpu"."""
    device = None
    if config is not None:
        device = config.get("device", None) if hasattr(config, "get") else getattr(config, "device", None)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch.cuda.is_available() is False")
    return device


def to_torch_dtype(name, key: str = "dtype") -> torch.dtype:
    """Map "bf16"/"bfloat16"/"fp32"/... (or a torch.dtype) to a torch.dtype; ``key`` names the config entry in errors."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return _DTYPES[str(name).lower()]
    except KeyError:
        raise ValueError(f"{key}={name!r} is not a known dtype; use one of {sorted(_DTYPES)}") from None


def ensure_process_group(device: str) -> None:
    """Initialise torch.distributed for ``device`` if nobody has (see ``verl.utils.distributed.init_process_group``:
    the rendezvous environment when set, else a one-rank group)."""
    from verl.utils.distributed import init_process_group

    init_process_group(device)


def build_device_mesh(device: str, fsdp_size: int = -1) -> DeviceMesh:
    """The data-parallel mesh over all W ranks of the default process group, from verl's ``fsdp_config.fsdp_size``.

    ``fsdp_size`` -1 or W: a 1-D mesh ("fsdp",) of W ranks: plain FSDP, every parameter sharded over all ranks.
    Otherwise a 2-D mesh ("replicate", "dp_shard") of shape (W // fsdp_size, fsdp_size): ``fully_shard`` then
    shards each parameter within a group of fsdp_size consecutive ranks and replicates it across the groups (HSDP;
    a shard's all-gathers stay inside its group, e.g. one node, and only the gradient all-reduce crosses groups).
    """
    ensure_process_group(device)
    world = dist.get_world_size()
    size = int(fsdp_size)
    if size == -1 or size == world:
        return init_device_mesh(device, (world,), mesh_dim_names=("fsdp",))
    if size <= 0 or world % size != 0:
        raise ValueError(f"fsdp_config.fsdp_size={fsdp_size} must be -1 or a positive divisor of the world size {world}")
    return init_device_mesh(device, (world // size, size), mesh_dim_names=("replicate", "dp_shard"))


def mixed_precision_policy(fsdp_config, device: str) -> MixedPrecisionPolicy:
    """``MixedPrecisionPolicy`` from ``fsdp_config.mixed_precision.{param_dtype, reduce_dtype}``.

    Defaults: bf16 parameters with fp32 gradient reduction on cuda; fp32 for both on cpu (CPU bf16 matmuls are
    slow and imprecise, and exact invariance tests need fp32).
    """
    mp = (fsdp_config or {}).get("mixed_precision", None) or {}
    if device == "cuda":
        param_dtype = to_torch_dtype(mp.get("param_dtype", "bf16"), "fsdp_config.mixed_precision.param_dtype")
    else:
        param_dtype = to_torch_dtype(mp.get("param_dtype", "fp32"), "fsdp_config.mixed_precision.param_dtype")
    reduce_dtype = to_torch_dtype(mp.get("reduce_dtype", "fp32"), "fsdp_config.mixed_precision.reduce_dtype")
    return MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype, cast_forward_inputs=True)


def offload_policy(fsdp_config, device: str) -> OffloadPolicy:
    """``CPUOffloadPolicy`` when ``fsdp_config.param_offload`` is set on cuda (params, grads and the optimizer step
    then live on the CPU); a no-op policy otherwise. ``grad_offload`` is a legacy key: accepted, ignored."""
    fsdp_config = fsdp_config or {}
    if fsdp_config.get("grad_offload", False):
        warnings.warn(
            "fsdp_config.grad_offload is a legacy key and is ignored: with FSDP2 gradients follow the parameters "
            "(use param_offload)",
            stacklevel=2,
        )
    if fsdp_config.get("param_offload", False) and device == "cuda":
        return CPUOffloadPolicy(pin_memory=True)
    return OffloadPolicy()


def _decoder_layer_classes(model: nn.Module) -> set[str]:
    names = set(getattr(model, "_no_split_modules", None) or [])
    if not names:
        raise ValueError(
            f"{type(model).__name__} does not declare _no_split_modules; cannot find its decoder layers to shard"
        )
    return names


def apply_fsdp2(
    model: nn.Module,
    mesh: DeviceMesh,
    mp_policy: MixedPrecisionPolicy,
    offload: Optional[OffloadPolicy] = None,
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Shard ``model`` in place with FSDP2: ``fully_shard`` on every decoder layer (the classes named in the HF model's
    ``_no_split_modules``: verl's transformer-layer wrap policy), then on the root. On a 1-D ``mesh`` each parameter
    is sharded over all its ranks (placement ``Shard(0)``); on a 2-D ("replicate", "dp_shard") mesh from
    ``build_device_mesh(fsdp_size=...)`` it is sharded along "dp_shard" and replicated along "replicate" (HSDP,
    placements ``(Replicate(), Shard(0))``), and gradients are averaged over all ranks either way. Decoder layers free their gathered parameters after forward
    (``reshard_after_forward``; False trades memory for one all-gather less in backward). A trainable root keeps its
    (embedding, final norm, lm/value head) gathered until backward, which needs them immediately; a frozen one
    (reference, rollout-only) never runs backward, so it frees them after each forward."""
    layer_classes = _decoder_layer_classes(model)
    kwargs = {"mesh": mesh, "mp_policy": mp_policy, "offload_policy": offload or OffloadPolicy()}
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    if not layers:
        raise ValueError(f"no module of class {sorted(layer_classes)} found in {type(model).__name__}")
    for layer in layers:
        fully_shard(layer, reshard_after_forward=reshard_after_forward, **kwargs)
        layer._verl_reshard_after_forward = reshard_after_forward
    root_reshard = not any(p.requires_grad for p in model.parameters())
    fully_shard(model, reshard_after_forward=root_reshard, **kwargs)
    model._verl_reshard_after_forward = root_reshard
    return model


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    """All FSDP2-managed modules inside ``model`` (root last)."""
    mods = [m for m in model.modules() if isinstance(m, FSDPModule)]
    return mods[1:] + mods[:1] if mods and mods[0] is model else mods


@contextlib.contextmanager
def fsdp2_full_params(model: nn.Module) -> Iterator[nn.Module]:
    """Gather the full parameters of an FSDP2 model for generation; free them on exit.

    Inside the context every layer stays gathered across forward calls (no per-token all-gather, no collective
    inside ``generate``, so ranks may stop at different lengths). On exit every module is resharded, so no second
    full copy survives into training. A plain (unsharded) module passes through unchanged.
    """
    mods = fsdp_modules(model)
    if not mods:
        yield model
        return
    for m in mods:
        m.set_reshard_after_forward(False, recurse=False)
        m.unshard()
    try:
        yield model
    finally:
        for m in mods:
            m.reshard()
            m.set_reshard_after_forward(getattr(m, "_verl_reshard_after_forward", m is not model), recurse=False)


def compute_device(model: nn.Module) -> torch.device:
    """The device a model computes on: its FSDP2 mesh's device (even when CPU offload keeps the shards on the CPU),
    else the device of its parameters."""
    p = next(model.parameters())
    if isinstance(p, DTensor):
        device_type = p.device_mesh.device_type
        return torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" else torch.device(device_type)
    return p.device


def is_sharded(model: nn.Module) -> bool:
    """True when every parameter of ``model`` is an FSDP2 shard (a DTensor), i.e. no gathered copy is alive."""
    return all(isinstance(p, DTensor) for p in model.parameters())


def fsdp2_clip_grad_norm_(parameters: Iterable[nn.Parameter], max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
    """Clip gradients of sharded parameters by their global norm; returns the total norm (a plain scalar tensor,
    possibly inf/nan: the caller decides whether to step). ``max_norm <= 0`` or None only measures the norm."""
    params = [p for p in parameters if p.grad is not None]
    grads = [p.grad for p in params]
    if not grads:
        return torch.tensor(0.0)
    total = torch.nn.utils.get_total_norm(grads, norm_type=norm_type, error_if_nonfinite=False)
    if isinstance(total, DTensor):
        total = total.full_tensor()
    if max_norm is not None and max_norm > 0 and torch.isfinite(total):
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


@torch.no_grad()
def offload_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Move every optimizer state tensor (Adam moments) to the CPU."""
    _move_optimizer_state(optimizer, torch.device("cpu"))


@torch.no_grad()
def load_optimizer_state(optimizer: torch.optim.Optimizer, device) -> None:
    """Move every optimizer state tensor back to ``device`` before a step."""
    _move_optimizer_state(optimizer, torch.device(device))


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device, non_blocking=True)


def full_tensor(param: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a parameter: an all-gather for an FSDP2 shard (a DTensor, collective over its mesh),
    the tensor itself otherwise. Shards offloaded to the CPU are moved to the mesh's device first (nccl)."""
    if not isinstance(param, DTensor):
        return param
    mesh = param.device_mesh
    local = param.to_local()
    if local.device.type != mesh.device_type:
        param = DTensor.from_local(
            local.to(mesh.device_type), mesh, param.placements, shape=param.shape, stride=param.stride()
        )
    return param.full_tensor()


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state dict on the CPU of rank 0; an empty dict on other ranks. Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not fsdp_modules(model):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _ties_word_embeddings(config) -> bool:
    if config is None:
        return False
    if hasattr(config, "get_text_config"):  # multimodal configs keep the flag on their text part
        config = config.get_text_config()
    return bool(getattr(config, "tie_word_embeddings", False))


def _module_name(model: nn.Module, module: nn.Module) -> Optional[str]:
    return next((name for name, m in model.named_modules(remove_duplicate=False) if m is module), None)


def drop_tied_output_embeddings(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the output embedding (``lm_head.weight``) when ``model.config.tie_word_embeddings`` is
    set: transformers ties it to the input embedding on load, so writing it would only duplicate the largest
    tensor (the gathered full state dict holds two separate copies, so save_pretrained cannot tell they are tied).

    Raises ValueError when the two differ: the tie was broken during training, and dropping the head would
    silently change the model.
    """
    if not _ties_word_embeddings(getattr(model, "config", None)):
        return state
    get_output, get_input = getattr(model, "get_output_embeddings", None), getattr(model, "get_input_embeddings", None)
    output_embeddings = get_output() if callable(get_output) else None
    input_embeddings = get_input() if callable(get_input) else None
    if output_embeddings is None or input_embeddings is None:  # e.g. a value model: no output embedding to tie
        return state
    out_key = f"{_module_name(model, output_embeddings)}.weight"
    in_key = f"{_module_name(model, input_embeddings)}.weight"
    if out_key not in state:
        return state
    if in_key in state and not torch.equal(state[out_key], state[in_key]):
        raise ValueError(
            f"config.tie_word_embeddings is true but {out_key} differs from {in_key}; the tie was broken, so the "
            "export cannot leave the output embedding out"
        )
    return {k: v for k, v in state.items() if k != out_key}


def unwrapped_model_class(model: nn.Module) -> type:
    """The original HF class of a model that ``fully_shard`` re-classed to ``FSDP<Name>``; for a peft (LoRA) model,
    the class of the HF model inside it (what its merged weights load into)."""
    get_base_model = getattr(type(model), "get_base_model", None)
    if callable(get_base_model):
        model = model.get_base_model()
    for cls in type(model).__mro__:
        if cls is not FSDPModule and not issubclass(cls, FSDPModule) and issubclass(cls, nn.Module):
            return cls
    return type(model)
