"""Worker-side checkpoints of an FSDP2 model: sharded model / optimizer / scheduler / RNG state per rank, plus an
HF-format export that ``transformers`` (and vLLM) load.

Layout of ``local_path`` (verl's file names):
    model_world_size_{W}_rank_{r}.pt        sharded model state (DTensor shards, on CPU; plain tensors for the plain
                                            module a single rank uses: either loads into either form)
    optim_world_size_{W}_rank_{r}.pt        sharded optimizer state
    extra_state_world_size_{W}_rank_{r}.pt  lr scheduler + RNG states (python, numpy, torch cpu / cuda)
    huggingface/                            config, safetensors weights, generation config, tokenizer
                                            (no lm_head.weight when config.tie_word_embeddings is set)

A sharded checkpoint restores onto the same world size; the ``huggingface/`` export loads anywhere.
"""
from __future__ import annotations

import os
import random
import shutil
import warnings
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from torch.distributed.tensor import DTensor

from verl.utils.fsdp_utils import drop_tied_output_embeddings, fsdp_modules, full_state_dict, unwrapped_model_class

DEFAULT_CONTENTS = ("model", "optimizer", "extra", "hf_model")
_KNOWN_CONTENTS = set(DEFAULT_CONTENTS)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _tensor_kind(state):
    """"sharded" when ``state`` holds a DTensor, "plain" when it holds only plain tensors (scalars aside: FSDP2
    keeps optimizer step counters plain), None when it holds neither (e.g. the state of momentum-free SGD)."""
    if isinstance(state, DTensor):
        return "sharded"
    if isinstance(state, torch.Tensor):
        return "plain" if state.ndim > 0 else None
    values = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else ()
    kinds = {_tensor_kind(v) for v in values}
    return "sharded" if "sharded" in kinds else "plain" if "plain" in kinds else None


def _full_tensors(state):
    """``state`` with every DTensor replaced by its full tensor (collective over the DTensor's mesh)."""
    if isinstance(state, DTensor):
        return state.full_tensor()
    if isinstance(state, dict):
        return {k: _full_tensors(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_full_tensors(v) for v in state)
    return state


def get_rng_state() -> dict:
    """Python, numpy, torch CPU and (when present) CUDA RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``get_rng_state`` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class FSDPCheckpointManager:
    """Save / load one worker's model (+ optimizer, lr scheduler, RNG) and export it in HF format.

    ``checkpoint_contents`` chooses among "model", "optimizer" and "extra" (scheduler + RNG); all by default.
    The ``huggingface/`` export (config, weights, tokenizer) is always written, so every checkpoint can be served
    or evaluated directly; "hf_model" is accepted for verl compatibility.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Optional[torch.optim.Optimizer] = None,
        lr_scheduler=None,
        processing_class=None,
        checkpoint_contents=None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.processing_class = processing_class
        contents = list(checkpoint_contents) if checkpoint_contents is not None else list(DEFAULT_CONTENTS)
        unknown = [c for c in contents if c not in _KNOWN_CONTENTS]
        if unknown:
            raise ValueError(f"checkpoint.contents has unknown entries {unknown}; use some of {list(DEFAULT_CONTENTS)}")
        self.contents = contents
        self.previous_saved_paths: list[str] = []

    @staticmethod
    def _file(local_path: str, kind: str, rank: int, world: int) -> str:
        return os.path.join(local_path, f"{kind}_world_size_{world}_rank_{rank}.pt")

    # ------------------------------------------------------------------------------------------------------------
    def save_checkpoint(
        self,
        local_path: str,
        hdfs_path: Optional[str] = None,
        global_step: int = 0,
        max_ckpt_to_keep: Optional[int] = None,
    ) -> None:
        """Write this rank's shards (and, on rank 0, the HF export) to ``local_path``. Collective.

        ``max_ckpt_to_keep``: after saving, delete the oldest directories this manager saved beyond that many.
        ``hdfs_path`` is accepted for verl compatibility; copying to HDFS is not supported and is skipped.
        """
        if hdfs_path:
            warnings.warn(f"save_checkpoint: hdfs_path={hdfs_path!r} is not supported; saved locally only", stacklevel=2)
        rank, world = _rank_world()
        local_path = os.path.abspath(os.path.expanduser(local_path))
        os.makedirs(local_path, exist_ok=True)
        _barrier()
        options = StateDictOptions(full_state_dict=False, cpu_offload=True)
        if "model" in self.contents:
            torch.save(get_model_state_dict(self.model, options=options), self._file(local_path, "model", rank, world))
        if "optimizer" in self.contents and self.optimizer is not None:
            optim_state = get_optimizer_state_dict(self.model, self.optimizer, options=options)
            torch.save(optim_state, self._file(local_path, "optim", rank, world))
        if "extra" in self.contents:
            extra = {
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None,
                "rng": get_rng_state(),
                "global_step": int(global_step),
            }
            torch.save(extra, self._file(local_path, "extra_state", rank, world))
        self._save_hf(os.path.join(local_path, "huggingface"))
        _barrier()

        if local_path in self.previous_saved_paths:
            self.previous_saved_paths.remove(local_path)
        self.previous_saved_paths.append(local_path)
        if max_ckpt_to_keep is not None and max_ckpt_to_keep > 0:
            while len(self.previous_saved_paths) > max_ckpt_to_keep:
                old = self.previous_saved_paths.pop(0)
                if rank == 0 and os.path.isdir(old):
                    shutil.rmtree(old, ignore_errors=True)

    def export_hf(self, local_dir: str) -> None:
        """Write a plain HF folder (config, safetensors, generation config, tokenizer) to ``local_dir``. Collective."""
        self._save_hf(os.path.abspath(os.path.expanduser(local_dir)))
        _barrier()

    def _save_hf(self, hf_dir: str) -> None:
        rank, _ = _rank_world()
        state = full_state_dict(self.model)  # collective: every rank joins, rank 0 receives
        if rank != 0:
            return
        state = drop_tied_output_embeddings(self.model, state)
        os.makedirs(hf_dir, exist_ok=True)
        # An empty (meta) instance of the original class writes the weights with HF's own naming, tied-weight and
        # sharding rules, without allocating a second copy of the model.
        with torch.device("meta"):
            shell = unwrapped_model_class(self.model)._from_config(self.model.config)
        shell.save_pretrained(hf_dir, state_dict=state, safe_serialization=True)
        if getattr(self.model, "generation_config", None) is not None:
            self.model.generation_config.save_pretrained(hf_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(hf_dir)

    # ------------------------------------------------------------------------------------------------------------
    def load_checkpoint(
        self, local_path: str, hdfs_path: Optional[str] = None, del_local_after_load: bool = False
    ) -> int:
        """Restore what ``save_checkpoint`` wrote with the same world size. Returns the saved global step.

        Raises FileNotFoundError naming the missing file (and the world sizes that were saved) on a mismatch.
        """
        if hdfs_path:
            warnings.warn(f"load_checkpoint: hdfs_path={hdfs_path!r} is not supported; loading {local_path}", stacklevel=2)
        rank, world = _rank_world()
        local_path = os.path.abspath(os.path.expanduser(local_path))
        global_step = 0
        if "model" in self.contents:
            sd = torch.load(self._require(local_path, "model", rank, world), weights_only=False)
            sd, full = self._as_model_expects(sd)
            set_model_state_dict(self.model, sd, options=StateDictOptions(full_state_dict=full, strict=True))
        if "optimizer" in self.contents and self.optimizer is not None:
            sd = torch.load(self._require(local_path, "optim", rank, world), weights_only=False)
            sd, full = self._as_model_expects(sd)
            set_optimizer_state_dict(self.model, self.optimizer, sd, options=StateDictOptions(full_state_dict=full))
        if "extra" in self.contents:
            extra = torch.load(self._require(local_path, "extra_state", rank, world), weights_only=False)
            if self.lr_scheduler is not None and extra.get("lr_scheduler") is not None:
                self.lr_scheduler.load_state_dict(extra["lr_scheduler"])
            set_rng_state(extra["rng"])
            global_step = int(extra.get("global_step", 0))
        _barrier()
        if del_local_after_load and rank == 0:
            shutil.rmtree(local_path, ignore_errors=True)
        return global_step

    def _as_model_expects(self, state: dict) -> tuple[dict, bool]:
        """(state, full_state_dict) for ``set_*_state_dict``. A one-rank run holds either an FSDP2 model (shards
        are DTensors) or a plain one (fsdp2_is_needed), and a checkpoint of one must load into the other: plain
        tensors go in as a full state dict (FSDP2 shards them), one-rank DTensor shards are the full tensors."""
        saved = _tensor_kind(state)
        if saved is None or saved == ("sharded" if fsdp_modules(self.model) else "plain"):
            return state, False
        return (_full_tensors(state) if saved == "sharded" else state), True

    def _require(self, local_path: str, kind: str, rank: int, world: int) -> str:
        path = self._file(local_path, kind, rank, world)
        if not os.path.isfile(path):
            saved = sorted(f for f in os.listdir(local_path) if f.endswith(".pt")) if os.path.isdir(local_path) else []
            raise FileNotFoundError(
                f"checkpoint file {path} not found (this run has world size {world}); files present: {saved}"
            )
        return path
