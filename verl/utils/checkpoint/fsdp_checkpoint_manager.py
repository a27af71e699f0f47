"""Worker-side checkpoints of an FSDP2 model: sharded model / optimizer / scheduler / RNG state per rank, plus an
HF-format folder that ``transformers`` (and vLLM) load.

Layout of ``local_path`` (verl's file names):
    model_world_size_{W}_rank_{r}.pt        sharded model state (DTensor shards, on CPU; plain tensors for the plain
                                            module a single rank uses: either loads into either form)
    optim_world_size_{W}_rank_{r}.pt        sharded optimizer state
    extra_state_world_size_{W}_rank_{r}.pt  lr scheduler + RNG states (python, numpy, torch cpu / cuda)
    fsdp_config.json                        {"FSDP_version": 2, "world_size": W} (as verl writes it)
    huggingface/                            always: config (naming the training dtype), generation config, tokenizer;
                                            safetensors weights only with "hf_model" in the save contents, written
                                            in the training dtype (FSDP2's mixed-precision param dtype, e.g. bf16),
                                            no lm_head.weight when config.tie_word_embeddings is set
    lora_adapter/                           LoRA actors only (as verl): adapter_config.json (naming the base model)
                                            + adapter_model.safetensors, loadable by peft

A LoRA (peft) model's shards hold its adapters only (the frozen base is model.path's own weights, loaded again on
resume), and its optimizer state covers only them; its HF weights are the merged W + alpha/r * B @ A.

A sharded checkpoint restores onto the same world size; ``python -m verl.model_merger merge --backend fsdp
--local_dir <local_path> --target_dir OUT`` turns the shards of any world size into the HF weights later.
"""
from __future__ import annotations

import copy
import json
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

from verl.utils.checkpoint.checkpoint_contents import CONTENT_ENTRIES, resolve_checkpoint_contents
from verl.utils.checkpoint.hf_folder import export_config, write_hf_metadata, write_hf_weights
from verl.utils.checkpoint.lora_weights import (adapter_state, is_lora_name, is_peft_model, lora_scaling,
                                                merge_lora_weights, write_peft_adapter)
from verl.utils.fsdp_utils import fsdp_modules, full_state_dict, full_tensor, unwrapped_model_class

DEFAULT_CONTENTS = CONTENT_ENTRIES  # everything, HF weights included, when the caller names no contents


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
    """Save / load one worker's model (+ optimizer, lr scheduler, RNG) and write its HF folder.

    Args:
        checkpoint_contents: what to save and load (see ``checkpoint_contents.py``): verl's ``checkpoint`` config
            section (``save_contents`` / ``load_contents``, or the older ``contents``), or a plain list of entries
            (the older verl signature: the same list for both). None: everything, "hf_model" included.
        where: the config path of that section, for error messages.
        export_dtype: the dtype of the HF weights and of config.json's ``dtype``: the training (compute) dtype,
            i.e. FSDP2's mixed-precision param dtype. None: the dtype of the model's parameters.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Optional[torch.optim.Optimizer] = None,
        lr_scheduler=None,
        processing_class=None,
        checkpoint_contents=None,
        where: str = "checkpoint",
        export_dtype: Optional[torch.dtype] = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.processing_class = processing_class
        if checkpoint_contents is None:
            self.save_contents, self.load_contents = list(DEFAULT_CONTENTS), list(DEFAULT_CONTENTS)
        elif hasattr(checkpoint_contents, "keys"):
            self.save_contents, self.load_contents = resolve_checkpoint_contents(checkpoint_contents, where)
        else:
            self.save_contents, self.load_contents = resolve_checkpoint_contents({"contents": checkpoint_contents}, where)
        self.export_dtype = export_dtype or next(
            (p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self.previous_saved_paths: list[str] = []
        self.lora = is_peft_model(model)

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
        """Write this rank's part of the save contents to ``local_path``, and on rank 0 ``huggingface/`` (config,
        generation config, tokenizer; the full weights only with "hf_model"). Collective.

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
        if "model" in self.save_contents:
            state = get_model_state_dict(self.model, options=options)
            if self.lora:  # the frozen base is model.path's: only the adapters are state
                state = {k: v for k, v in state.items() if is_lora_name(k)}
            torch.save(state, self._file(local_path, "model", rank, world))
            if rank == 0:
                with open(os.path.join(local_path, "fsdp_config.json"), "w") as f:
                    json.dump({"FSDP_version": 2, "world_size": world}, f)
        if "optimizer" in self.save_contents and self.optimizer is not None:
            optim_state = get_optimizer_state_dict(self.model, self.optimizer, options=options)
            torch.save(optim_state, self._file(local_path, "optim", rank, world))
        if "extra" in self.save_contents:
            extra = {
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None,
                "rng": get_rng_state(),
                "global_step": int(global_step),
            }
            torch.save(extra, self._file(local_path, "extra_state", rank, world))
        self._save_hf(os.path.join(local_path, "huggingface"), weights="hf_model" in self.save_contents)
        if self.lora:
            self.save_lora_adapter(os.path.join(local_path, "lora_adapter"))
        _barrier()

        if local_path in self.previous_saved_paths:
            self.previous_saved_paths.remove(local_path)
        self.previous_saved_paths.append(local_path)
        if max_ckpt_to_keep is not None and max_ckpt_to_keep > 0:
            while len(self.previous_saved_paths) > max_ckpt_to_keep:
                old = self.previous_saved_paths.pop(0)
                if rank == 0 and os.path.isdir(old):
                    shutil.rmtree(old, ignore_errors=True)

    def export_hf(self, local_dir: str, lora_adapter: bool = False) -> None:
        """Write a full HF folder (config, safetensors in the export dtype, generation config, tokenizer) to
        ``local_dir``, whatever the save contents; a LoRA model's weights merged, and with ``lora_adapter`` its peft
        adapter folder in ``local_dir/lora_adapter`` too. Collective."""
        local_dir = os.path.abspath(os.path.expanduser(local_dir))
        if lora_adapter and not self.lora:
            raise ValueError("export_hf(lora_adapter=True): this model has no LoRA adapters (model.lora_rank=0)")
        self._save_hf(local_dir, weights=True)
        if lora_adapter:
            self.save_lora_adapter(os.path.join(local_dir, "lora_adapter"))
        _barrier()

    def save_lora_adapter(self, adapter_dir: str) -> None:
        """Rank 0 writes the peft adapter folder (adapter_config.json naming the base model +
        adapter_model.safetensors) of a LoRA model, gathered from every rank (collective)."""
        rank, _ = _rank_world()
        with torch.no_grad():
            named = [(n, full_tensor(p.detach()).cpu()) for n, p in self.model.named_parameters() if is_lora_name(n)]
        if rank == 0:
            config = copy.deepcopy(self.model.peft_config["default"])
            config.inference_mode = True
            write_peft_adapter(adapter_dir, config, adapter_state(named))

    def _save_hf(self, hf_dir: str, weights: bool) -> None:
        """Rank 0 writes the config, generation config and tokenizer to ``hf_dir``, and with ``weights`` the full
        weights (gathered from every rank: collective then)."""
        rank, _ = _rank_world()
        state = full_state_dict(self.model) if weights else None
        if rank != 0:
            return
        os.makedirs(hf_dir, exist_ok=True)
        model_class = unwrapped_model_class(self.model)
        config = export_config(self.model.config, model_class.__name__, self.export_dtype)
        if weights:
            if self.lora:
                state = dict(merge_lora_weights(state.items(), lora_scaling(self.model)))
            write_hf_weights(hf_dir, model_class, config, state)
        write_hf_metadata(hf_dir, config, getattr(self.model, "generation_config", None), self.processing_class)

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
        if "model" in self.load_contents:
            path = self._require(local_path, "model", rank, world)
            sd = torch.load(path, weights_only=False)
            if self.lora:
                self._check_adapter_keys(path, sd)
                self._warn_on_other_base(local_path)
            sd, full = self._as_model_expects(sd)
            set_model_state_dict(self.model, sd, options=StateDictOptions(full_state_dict=full, strict=not self.lora))
        if "optimizer" in self.load_contents and self.optimizer is not None:
            sd = torch.load(self._require(local_path, "optim", rank, world), weights_only=False)
            sd, full = self._as_model_expects(sd)
            set_optimizer_state_dict(self.model, self.optimizer, sd, options=StateDictOptions(full_state_dict=full))
        if "extra" in self.load_contents:
            extra = torch.load(self._require(local_path, "extra_state", rank, world), weights_only=False)
            if self.lr_scheduler is not None and extra.get("lr_scheduler") is not None:
                self.lr_scheduler.load_state_dict(extra["lr_scheduler"])
            set_rng_state(extra["rng"])
            global_step = int(extra.get("global_step", 0))
        _barrier()
        if del_local_after_load and rank == 0:
            shutil.rmtree(local_path, ignore_errors=True)
        return global_step

    def _warn_on_other_base(self, local_path: str) -> None:
        """Adapters trained on one base model mean something else on another: warn when the checkpoint's
        lora_adapter/adapter_config.json names a base other than this model's (it may just have moved)."""
        config_path = os.path.join(local_path, "lora_adapter", "adapter_config.json")
        if not os.path.isfile(config_path):
            return
        with open(config_path) as f:
            saved = json.load(f).get("base_model_name_or_path")
        current = self.model.peft_config["default"].base_model_name_or_path
        if saved and current and os.path.abspath(os.path.expanduser(saved)) != os.path.abspath(os.path.expanduser(current)):
            warnings.warn(f"{local_path}: its LoRA adapters were trained on {saved}, this run's model.path is {current}",
                          stacklevel=3)

    def _check_adapter_keys(self, path: str, state: dict) -> None:
        """A LoRA model restores exactly its adapter tensors: ValueError naming what is missing or foreign."""
        expected = {n for n, _ in self.model.named_parameters() if is_lora_name(n)}
        foreign = sorted(set(state) - expected)
        missing = sorted(expected - set(state))
        if foreign or missing:
            raise ValueError(
                f"{path} does not hold this model's LoRA adapters (model.lora_rank / target_modules must match the "
                f"saved run's): {len(missing)} missing, e.g. {missing[:3]}; {len(foreign)} not adapters of this "
                f"model, e.g. {foreign[:3]}")

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
