"""Turn a sharded FSDP checkpoint into an HF model folder, without a GPU or a process group (verl's command line):

    python -m verl.model_merger merge --backend fsdp \\
        --local_dir checkpoints/<project>/<experiment>/global_step_N/actor --target_dir OUT

Reads ``model_world_size_W_rank_r.pt`` for r < W (any W; DTensor shards of a 1-D FSDP or 2-D HSDP mesh, or the plain
tensors of a one-rank plain module), joins each tensor from its placements, and writes safetensors in the dtype that
``<local_dir>/huggingface/config.json`` names (the training dtype; ``--dtype`` overrides), plus the config,
generation config and tokenizer files of that folder. The trainer writes those weights at save time only when
``checkpoint.save_contents`` holds ``hf_model``; this builds them afterwards for any saved step.

A LoRA actor's shards hold only its adapters: the merger reads the base weights from the model that
``<local_dir>/lora_adapter/adapter_config.json`` names (``--base_model_path`` overrides) and writes the merged model
(W + alpha/r * B @ A); ``--save_lora_adapter`` also writes the peft adapter folder to ``<target_dir>/lora_adapter``.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import shutil
from typing import Optional, Sequence

import torch

MODEL_FILE = re.compile(r"^model_world_size_(\d+)_rank_(\d+)\.pt$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")


def find_world_size(local_dir: str) -> int:
    """The world size W of the model shards in ``local_dir``; FileNotFoundError naming what is missing."""
    if not os.path.isdir(local_dir):
        raise FileNotFoundError(f"--local_dir {local_dir} is not a folder")
    files = sorted(os.listdir(local_dir))
    ranks: dict[int, set[int]] = {}
    for name in files:
        match = MODEL_FILE.match(name)
        if match:
            ranks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if not ranks:
        raise FileNotFoundError(
            f"no model_world_size_W_rank_r.pt in {local_dir} (files: {files}); was it saved with 'model' in "
            f"checkpoint.save_contents, and is it a global_step_N/actor (or critic) folder?")
    if len(ranks) > 1:
        raise ValueError(f"{local_dir} holds model shards of several world sizes {sorted(ranks)}; keep one")
    world, present = next(iter(ranks.items()))
    missing = [f"model_world_size_{world}_rank_{r}.pt" for r in range(world) if r not in present]
    if missing:
        raise FileNotFoundError(f"{local_dir} lacks {missing} (a world-size-{world} checkpoint needs every rank)")
    return world


def load_shards(local_dir: str, world: int) -> list[dict]:
    """Every rank's model state dict, on the CPU."""
    # A DTensor's pickled device mesh looks for its process groups and warns when there are none: expected here.
    mesh_logger = logging.getLogger("torch.distributed.device_mesh")
    level = mesh_logger.level
    mesh_logger.setLevel(logging.ERROR)
    try:
        return [torch.load(os.path.join(local_dir, f"model_world_size_{world}_rank_{r}.pt"), map_location="cpu",
                           weights_only=False) for r in range(world)]
    finally:
        mesh_logger.setLevel(level)


def _rank_coordinates(mesh_ranks: torch.Tensor) -> dict[tuple, int]:
    """{coordinate in the mesh: global rank} for a mesh tensor of ranks (shape = mesh shape)."""
    return {coord: int(mesh_ranks[coord]) for coord in itertools.product(*(range(n) for n in mesh_ranks.shape))}


def join_dtensor(name: str, per_rank: list) -> torch.Tensor:
    """The full tensor of one DTensor from every rank's copy: shards concatenated along their dim in mesh order
    (``Shard``), rank 0's coordinate taken (``Replicate``). ValueError naming ``name`` for other placements or a
    shape that does not add up."""
    first = per_rank[0]
    mesh_ranks = first.device_mesh.mesh
    placements = tuple(first.placements)
    coords = _rank_coordinates(mesh_ranks)

    def build(mesh_dim: int, prefix: tuple) -> torch.Tensor:
        if mesh_dim == mesh_ranks.dim():
            return per_rank[coords[prefix]].to_local()
        placement = placements[mesh_dim]
        if placement.is_replicate():
            return build(mesh_dim + 1, prefix + (0,))
        if placement.is_shard():
            parts = [build(mesh_dim + 1, prefix + (i,)) for i in range(mesh_ranks.shape[mesh_dim])]
            return torch.cat(parts, dim=placement.dim)
        raise ValueError(f"{name}: placement {placement} is not supported (only Shard and Replicate)")

    full = build(0, ())
    if tuple(full.shape) != tuple(first.shape):
        raise ValueError(f"{name}: joined shards have shape {tuple(full.shape)}, the tensor is {tuple(first.shape)}")
    return full


def merge_state_dicts(shards: list[dict]) -> dict[str, torch.Tensor]:
    """One full state dict from W per-rank state dicts (DTensor shards or, for one rank, plain tensors)."""
    from torch.distributed.tensor import DTensor

    keys = list(shards[0])
    for r, shard in enumerate(shards[1:], start=1):
        if list(shard) != keys:
            raise ValueError(f"rank {r}'s model file holds different keys from rank 0's")
    merged = {}
    for key in keys:
        value = shards[0][key]
        merged[key] = join_dtensor(key, [s[key] for s in shards]) if isinstance(value, DTensor) else value
    return merged


def _copy_metadata(hf_dir: str, target_dir: str) -> None:
    """Copy every file of ``hf_dir`` but weights and config.json (the tokenizer, generation config, templates)."""
    if os.path.realpath(hf_dir) == os.path.realpath(target_dir):
        return
    for name in sorted(os.listdir(hf_dir)):
        path = os.path.join(hf_dir, name)
        if os.path.isfile(path) and name != "config.json" and not name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(path, os.path.join(target_dir, name))


def role_dir(local_dir: str) -> str:
    """``local_dir`` itself when it holds model shards, else its ``actor/`` when that does (a ``global_step_N``
    folder names its actor), else ``local_dir`` (find_world_size then explains what is missing)."""
    actor = os.path.join(local_dir, "actor")
    if not any(MODEL_FILE.match(n) for n in _listdir(local_dir)) and any(MODEL_FILE.match(n) for n in _listdir(actor)):
        return actor
    return local_dir


def _listdir(folder: str) -> list[str]:
    return os.listdir(folder) if os.path.isdir(folder) else []


def _has_weights(folder: str) -> bool:
    return any(name.endswith(WEIGHT_SUFFIXES) for name in _listdir(folder))


def hf_model_path(model: str, merged_dir: str) -> str:
    """A folder (or hub id) that ``from_pretrained`` loads, for ``model``: an HF folder or hub id as it is; a trainer
    checkpoint (``global_step_N``, its ``actor/`` or ``actor/huggingface``) as its ``huggingface/`` folder when that
    holds weights (saved with ``hf_model``), else as its shards merged into ``merged_dir`` (reused if already
    there)."""
    path = os.path.abspath(os.path.expanduser(model))
    if not os.path.isdir(path):
        return model  # a hub id (or a path that from_pretrained will report missing)
    if os.path.basename(path) == "huggingface" and not _has_weights(path):
        path = os.path.dirname(path)
    shards = role_dir(path)
    if not any(MODEL_FILE.match(n) for n in _listdir(shards)):
        hf = os.path.join(path, "actor", "huggingface")
        return hf if _has_weights(hf) else path
    if _has_weights(os.path.join(shards, "huggingface")):
        return os.path.join(shards, "huggingface")
    if not _has_weights(merged_dir):
        merge_fsdp_checkpoint(shards, merged_dir)
    return merged_dir


def merge_fsdp_checkpoint(local_dir: str, target_dir: str, hf_model_path: Optional[str] = None,
                          dtype: Optional[str] = None, base_model_path: Optional[str] = None,
                          save_lora_adapter: bool = False) -> str:
    """Write an HF folder to ``target_dir`` from the shards in ``local_dir`` (a ``global_step_N/actor`` folder, or
    ``global_step_N``, whose actor is meant) and the config / tokenizer in ``hf_model_path`` (default
    ``<actor folder>/huggingface``); returns ``target_dir``. ``dtype`` overrides the config's.

    LoRA shards (adapters only) are merged into the base model (``base_model_path``, default the one
    ``lora_adapter/adapter_config.json`` names); ``save_lora_adapter`` adds ``target_dir/lora_adapter``.
    """
    from transformers import AutoConfig

    from verl.utils.checkpoint.lora_weights import is_lora_name, merge_lora_checkpoint, write_adapter_folder

    from verl.utils.checkpoint.hf_folder import hf_model_class, write_hf_weights
    from verl.utils.fsdp_utils import to_torch_dtype

    local_dir = role_dir(os.path.abspath(os.path.expanduser(local_dir)))
    hf_dir = os.path.abspath(os.path.expanduser(hf_model_path or os.path.join(local_dir, "huggingface")))
    world = find_world_size(local_dir)
    if not os.path.isfile(os.path.join(hf_dir, "config.json")):
        raise FileNotFoundError(f"{hf_dir}/config.json not found: the merger takes the model config and tokenizer "
                                f"from there (pass --hf_model_path for another folder)")
    state = merge_state_dicts(load_shards(local_dir, world))
    config = AutoConfig.from_pretrained(hf_dir)
    if dtype is not None:
        config.dtype = to_torch_dtype(dtype, "--dtype")
    elif not isinstance(config.dtype, torch.dtype):
        config.dtype = to_torch_dtype(config.dtype or "float32", f"{hf_dir}/config.json dtype")
    lora = any(is_lora_name(k) for k in state)
    if save_lora_adapter and not lora:
        raise ValueError(f"--save_lora_adapter: {local_dir} holds no LoRA adapters (a full fine-tuning checkpoint)")
    target_dir = os.path.abspath(os.path.expanduser(target_dir))
    os.makedirs(target_dir, exist_ok=True)
    if lora:
        adapters = state
        state, adapter_config = merge_lora_checkpoint(local_dir, adapters, config.dtype, base_model_path)
        if save_lora_adapter:
            write_adapter_folder(os.path.join(target_dir, "lora_adapter"), adapters, adapter_config)
    write_hf_weights(target_dir, hf_model_class(config), config, state)
    _copy_metadata(hf_dir, target_dir)
    print(f"[model_merger] {world} shard(s) of {local_dir} -> {target_dir} ({len(state)} tensors, {config.dtype})",
          flush=True)
    return target_dir


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m verl.model_merger", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="write an HF folder from a sharded checkpoint")
    merge.add_argument("--backend", required=True, choices=["fsdp"], help="checkpoint format (only fsdp here)")
    merge.add_argument("--local_dir", required=True,
                       help="a global_step_N/actor (or critic) folder; a global_step_N folder means its actor")
    merge.add_argument("--target_dir", required=True, help="the HF folder to write")
    merge.add_argument("--hf_model_path", default=None, help="config / tokenizer folder (default local_dir/huggingface)")
    merge.add_argument("--dtype", default=None, help="bf16 | fp16 | fp32 (default: the dtype config.json names)")
    merge.add_argument("--base_model_path", default=None,
                       help="LoRA checkpoints: the base model (default: the one lora_adapter/adapter_config.json names)")
    merge.add_argument("--save_lora_adapter", action="store_true",
                       help="LoRA checkpoints: also write the peft adapter folder to target_dir/lora_adapter")
    args = parser.parse_args(argv)
    try:
        merge_fsdp_checkpoint(args.local_dir, args.target_dir, args.hf_model_path, args.dtype, args.base_model_path,
                              args.save_lora_adapter)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
