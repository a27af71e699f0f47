"""FSDP2 workers: the actor (+ HF rollout + reference policy) and the critic, one instance per rank.

Each public method is ``@register``ed with a dispatch mode, so the driver calls it on a whole worker group (Ray or
in-process); ``DP_COMPUTE_PROTO`` methods receive this rank's shard of the batch and return their shard of the
result. Batch sizes in the config are global (mini-batches in prompts, as in verl); the workers turn them into
per-rank row counts once, on a private copy of the config.
"""
from __future__ import annotations

import contextlib
import copy
import resource
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from verl.protocol import DataProto
from verl.single_controller.base import Worker
from verl.single_controller.base.decorator import Dispatch, register
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
from verl.utils.device_plan import plan_device
from verl.utils.fsdp_utils import build_device_mesh, get_device_name, load_optimizer_state, offload_optimizer_state
from verl.utils.generation_config import model_eos_token_ids
from verl.workers.actor import DataParallelPPOActor
from verl.workers.critic import DataParallelPPOCritic
from verl.workers.sharding import (
    build_fsdp_causal_lm,
    build_fsdp_value_model,
    build_lr_scheduler,
    build_optimizer,
    load_tokenizer,
)
from verl.workers.sharding.lora import adapters_disabled, lora_rank

ROLES = ("actor", "rollout", "ref", "actor_rollout", "actor_rollout_ref")


def _private_copy(config) -> DictConfig:
    """A resolved, writable copy: the in-process backend shares the driver's config object, which must not change."""
    if isinstance(config, DictConfig):
        return OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    return OmegaConf.create(copy.deepcopy(dict(config)))


def _per_gpu(section: DictConfig, global_key: str, per_gpu_key: str, world: int, where: str) -> None:
    """Turn a legacy global micro-batch size into the per-GPU one (verl's rule), with a clear error."""
    global_value = section.get(global_key, None)
    if global_value is None:
        return
    if section.get(per_gpu_key, None) is not None:
        raise ValueError(f"{where}.{global_key}={global_value} and {where}.{per_gpu_key}={section[per_gpu_key]}: set one")
    if global_value % world != 0:
        raise ValueError(f"{where}.{global_key}={global_value} is not divisible by the world size {world}")
    with open_dict(section):
        section[per_gpu_key] = global_value // world


def _normalize_mini_batch(section: DictConfig, n: int, world: int, where: str) -> None:
    """ppo_mini_batch_size: prompts -> rows per rank (x n samples, / world), checking divisibility."""
    mini = int(section.ppo_mini_batch_size) * n
    if mini % world != 0:
        raise ValueError(
            f"{where}.ppo_mini_batch_size={section.ppo_mini_batch_size} x rollout.n={n} = {mini} rows is not "
            f"divisible by the world size {world}"
        )
    with open_dict(section):
        section.ppo_mini_batch_size = mini // world
    micro = section.get("ppo_micro_batch_size_per_gpu", None)
    if not section.get("use_dynamic_bsz", False):
        if micro is None:
            raise ValueError(f"{where}: set ppo_micro_batch_size_per_gpu (or ppo_micro_batch_size, or use_dynamic_bsz)")
        if micro > section.ppo_mini_batch_size or section.ppo_mini_batch_size % micro != 0:
            raise ValueError(
                f"{where}.ppo_micro_batch_size_per_gpu={micro} must divide the per-rank mini-batch of "
                f"{section.ppo_mini_batch_size} rows ({where}.ppo_mini_batch_size x n / world size)"
            )


def _memory_metrics(device: str) -> dict:
    """Peak memory so far: process RSS (perf/cpu_max_rss_gb) and, on GPU, verl's perf/max_memory_*_gb."""
    metrics = {"perf/cpu_max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}
    if device == "cuda":
        metrics["perf/max_memory_allocated_gb"] = torch.cuda.max_memory_allocated() / 1024**3
        metrics["perf/max_memory_reserved_gb"] = torch.cuda.max_memory_reserved() / 1024**3
    return metrics


def _with_meta(data: DataProto, **defaults) -> DataProto:
    """A shallow copy of ``data`` whose meta_info has ``defaults`` filled in (the caller's object is untouched)."""
    meta = dict(data.meta_info)
    for key, value in defaults.items():
        meta.setdefault(key, value)
    return DataProto(batch=data.batch, non_tensor_batch=data.non_tensor_batch, meta_info=meta)


class ActorRolloutRefWorker(Worker):
    """Actor, rollout and/or reference policy in one process (the hybrid engine).

    ``config`` is the ``actor_rollout_ref`` section; ``role`` one of actor, rollout, ref, actor_rollout,
    actor_rollout_ref. The rollout generates with the actor's own module (no weight copy, no sync step). With
    ``model.lora_rank`` > 0 the actor trains LoRA adapters and the reference is the same module with its adapters
    off (verl's ref_in_actor): no reference copy is built.
    """

    def __init__(self, config, role: str):
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"ActorRolloutRefWorker: role={role!r} is not one of {list(ROLES)}")
        self.role = role
        self._is_actor = role in ("actor", "actor_rollout", "actor_rollout_ref")
        self._is_rollout = role in ("rollout", "actor_rollout", "actor_rollout_ref")
        self._is_ref = role in ("ref", "actor_rollout_ref")
        self.config = _private_copy(config)
        self.device = get_device_name(self.config)
        self.init_distributed(self.device)
        world = self.world_size
        cfg = self.config
        n = int(cfg.rollout.get("n", 1)) if "rollout" in cfg else 1
        if self._is_actor:
            _per_gpu(cfg.actor, "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu", world, "actor_rollout_ref.actor")
            _normalize_mini_batch(cfg.actor, n, world, "actor_rollout_ref.actor")
            with open_dict(cfg.actor):
                cfg.actor.use_remove_padding = bool(cfg.model.get("use_remove_padding", False))
        if "rollout" in cfg:
            _per_gpu(
                cfg.rollout, "log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu", world,
                "actor_rollout_ref.rollout",
            )
        if self._is_ref:
            _per_gpu(cfg.ref, "log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu", world, "actor_rollout_ref.ref")
            with open_dict(cfg.ref):
                cfg.ref.use_remove_padding = bool(cfg.model.get("use_remove_padding", False))
        self.actor_module = self.actor_optimizer = self.actor_lr_scheduler = None
        self.actor = self.rollout = self.ref_policy = self.checkpoint_manager = None
        # LoRA actor: the reference is the actor's own module with its adapters off (verl's ref_in_actor)
        self._ref_in_actor = self._is_ref and self._is_actor and lora_rank(cfg.model) > 0
        self._optimizer_offload = False

    # ------------------------------------------------------------------------------------------------------------
    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self):
        """Load the tokenizer and the model(s), shard them with FSDP2, build optimizer, schedule and rollout."""
        cfg = self.config
        self.tokenizer = load_tokenizer(cfg.model.path, bool(cfg.model.get("trust_remote_code", False)),
                                        cfg.model.get("external_lib", None))
        actor_fsdp = cfg.actor.get("fsdp_config", None) if "actor" in cfg else None
        # the actor's fsdp_size shapes the mesh of every model here (actor, rollout, ref), as in verl
        mesh = build_device_mesh(self.device, fsdp_size=(actor_fsdp or {}).get("fsdp_size", -1))
        if self._is_actor or self._is_rollout:
            plan = plan_device(self.device, fsdp_config=actor_fsdp)
            self.actor_module = build_fsdp_causal_lm(cfg.model, actor_fsdp, mesh, self.device, trainable=self._is_actor)
            if self._is_actor:
                self.actor_optimizer = build_optimizer(self.actor_module.parameters(), cfg.actor.optim)
                self.actor_lr_scheduler = build_lr_scheduler(self.actor_optimizer, cfg.actor.optim)
                self._optimizer_offload = plan.optimizer_offload
                self.actor = DataParallelPPOActor(cfg.actor, self.actor_module, self.actor_optimizer)
                contents = cfg.actor.get("checkpoint", None) or {}
            else:
                contents = ["model"]
            self.checkpoint_manager = FSDPCheckpointManager(
                self.actor_module, self.actor_optimizer, self.actor_lr_scheduler, self.tokenizer, contents,
                where="actor_rollout_ref.actor.checkpoint", export_dtype=plan.param_dtype,
            )
        if self._is_rollout:
            self.rollout = self._build_rollout()
            self.eos_token_ids = model_eos_token_ids(cfg.model.path, self.tokenizer)
        if self._ref_in_actor:
            self.ref_policy = DataParallelPPOActor(cfg.ref, self.actor_module)
        elif self._is_ref:
            ref_module = build_fsdp_causal_lm(
                cfg.model, cfg.ref.get("fsdp_config", None), mesh, self.device, trainable=False
            )
            self.ref_policy = DataParallelPPOActor(cfg.ref, ref_module)

    def _build_rollout(self):
        name = self.config.rollout.get("name", "hf")
        if name == "hf":
            from verl.workers.rollout.hf_rollout import HFRollout

            return HFRollout(self.actor_module, self.config.rollout)
        if name == "vllm":
            # in-process vLLM engine fed with the actor's weights before every generation (vllm_weight_sync.py)
            from verl.workers.rollout.vllm_rollout import build_vllm_rollout

            return build_vllm_rollout(
                self.actor_module,
                self.config.model.path,
                self.config.rollout,
                tokenizer=self.tokenizer,
                device=self.device,
                trust_remote_code=bool(self.config.model.get("trust_remote_code", False)),
            )
        raise ValueError(f"actor_rollout_ref.rollout.name={name!r} is not one of ['hf', 'vllm']")

    def _require(self, part, what: str):
        if part is None:
            raise RuntimeError(f"{what} is not available for role={self.role!r} (or init_model() was not called)")
        return part

    # ------------------------------------------------------------------------------------------------------------
    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        """Left-padded prompts [B, P] -> prompts, responses [B, R], input_ids / attention_mask / position_ids
        [B, P+R], response_mask [B, R]. Unless meta_info sets them, generation stops at every EOS id of the model
        (generation_config.json's list + the tokenizer's, see ``model_eos_token_ids``) and pads with the
        tokenizer's pad id."""
        rollout = self._require(self.rollout, "generate_sequences")
        prompts = _with_meta(prompts, eos_token_id=self.eos_token_ids, pad_token_id=self.tokenizer.pad_token_id)
        return rollout.generate_sequences(prompts).to("cpu")

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_log_prob(self, data: DataProto) -> DataProto:
        """``old_log_probs`` and ``entropys`` [B, R] under the current actor, logits / rollout temperature."""
        actor = self._require(self.actor, "compute_log_prob")
        rollout_cfg = self.config.rollout
        data = _with_meta(
            data,
            temperature=rollout_cfg.get("temperature", 1.0),
            micro_batch_size=rollout_cfg.get("log_prob_micro_batch_size_per_gpu", None),
            use_dynamic_bsz=rollout_cfg.get("log_prob_use_dynamic_bsz", False),
            max_token_len=rollout_cfg.get("log_prob_max_token_len_per_gpu", None),
        )
        log_probs, entropys = actor.compute_log_prob(data, calculate_entropy=True)
        return DataProto.from_dict(
            tensors={"old_log_probs": log_probs, "entropys": entropys},
            meta_info={"temperature": data.meta_info["temperature"]},
        )

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_ref_log_prob(self, data: DataProto) -> DataProto:
        """``ref_log_prob`` [B, R] under the frozen reference policy (same temperature as the actor): a LoRA actor's
        own module with its adapters off, else a separate frozen copy of the model."""
        ref = self._require(self.ref_policy, "compute_ref_log_prob")
        ref_cfg = self.config.ref
        data = _with_meta(
            data,
            temperature=self.config.rollout.get("temperature", 1.0) if "rollout" in self.config else 1.0,
            micro_batch_size=ref_cfg.get("log_prob_micro_batch_size_per_gpu", None),
            use_dynamic_bsz=ref_cfg.get("log_prob_use_dynamic_bsz", False),
            max_token_len=ref_cfg.get("log_prob_max_token_len_per_gpu", None),
        )
        with adapters_disabled(self.actor_module) if self._ref_in_actor else contextlib.nullcontext():
            log_probs, _ = ref.compute_log_prob(data, calculate_entropy=False)
        return DataProto.from_dict(tensors={"ref_log_prob": log_probs})

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_actor(self, data: DataProto) -> DataProto:
        """One PPO/GRPO policy update (all mini-batches and ppo_epochs); the LR schedule steps once per call.
        Returns meta_info["metrics"] with actor/* (lists, one value per mini-batch), actor/lr, perf/* (memory)."""
        actor = self._require(self.actor, "update_actor")
        data = _with_meta(data, temperature=self.config.rollout.get("temperature", 1.0) if "rollout" in self.config else 1.0)
        if self._optimizer_offload:
            load_optimizer_state(self.actor_optimizer, self.device)
        metrics = actor.update_policy(data)
        metrics["actor/lr"] = self.actor_lr_scheduler.get_last_lr()[0]
        self.actor_lr_scheduler.step()
        if self._optimizer_offload:
            offload_optimizer_state(self.actor_optimizer)
        metrics.update(_memory_metrics(self.device))
        return DataProto(meta_info={"metrics": metrics})

    # ------------------------------------------------------------------------------------------------------------
    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_checkpoint(self, local_path: str, hdfs_path: Optional[str] = None, global_step: int = 0, max_ckpt_to_keep=None):
        """The ``actor.checkpoint.save_contents`` (sharded model / optimizer / scheduler + RNG per rank) and
        ``local_path/huggingface/`` (config + tokenizer; the full weights, in the training dtype, with "hf_model")."""
        manager = self._require(self.checkpoint_manager, "save_checkpoint")
        manager.save_checkpoint(local_path, hdfs_path=hdfs_path, global_step=global_step, max_ckpt_to_keep=max_ckpt_to_keep)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_checkpoint(self, local_path: str, hdfs_path: Optional[str] = None, del_local_after_load: bool = False):
        """Restore what ``save_checkpoint`` wrote (same world size)."""
        manager = self._require(self.checkpoint_manager, "load_checkpoint")
        if self._is_actor and self._optimizer_offload:
            load_optimizer_state(self.actor_optimizer, self.device)
        manager.load_checkpoint(local_path, hdfs_path=hdfs_path, del_local_after_load=del_local_after_load)
        if self._is_actor and self._optimizer_offload:
            offload_optimizer_state(self.actor_optimizer)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def export_hf(self, local_dir: str, lora_adapter: bool = False):
        """Write the actor as a full HF folder (config, safetensors in the training dtype, tokenizer) that
        transformers / vLLM load, whatever the save contents; a LoRA actor merged (W + alpha/r * B @ A), and with
        ``lora_adapter`` also its peft adapter folder in ``local_dir/lora_adapter``."""
        self._require(self.checkpoint_manager, "export_hf").export_hf(local_dir, lora_adapter=lora_adapter)


class CriticWorker(Worker):
    """PPO critic: the backbone at ``critic.model.path`` with a scalar value head; ``config`` is the critic section."""

    def __init__(self, config):
        super().__init__()
        self.config = _private_copy(config)
        self.device = get_device_name(self.config)
        self.init_distributed(self.device)
        cfg, world = self.config, self.world_size
        _per_gpu(cfg, "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu", world, "critic")
        _per_gpu(cfg, "forward_micro_batch_size", "forward_micro_batch_size_per_gpu", world, "critic")
        _normalize_mini_batch(cfg, int(cfg.get("rollout_n", 1)), world, "critic")
        with open_dict(cfg):
            cfg.use_remove_padding = bool(cfg.model.get("use_remove_padding", False))
            if cfg.get("forward_micro_batch_size_per_gpu", None) is None:
                cfg.forward_micro_batch_size_per_gpu = cfg.get("ppo_micro_batch_size_per_gpu", None)
        self.critic = self.critic_module = self.critic_optimizer = self.critic_lr_scheduler = None
        self.checkpoint_manager = None
        self._optimizer_offload = False

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self):
        """Load tokenizer and value model, shard with FSDP2, build optimizer and schedule."""
        cfg = self.config
        tokenizer_path = cfg.model.get("tokenizer_path", None) or cfg.model.path
        self.tokenizer = load_tokenizer(tokenizer_path, bool(cfg.model.get("trust_remote_code", False)),
                                        cfg.model.get("external_lib", None))
        fsdp_config = cfg.model.get("fsdp_config", None)
        mesh = build_device_mesh(self.device, fsdp_size=(fsdp_config or {}).get("fsdp_size", -1))
        self.critic_module = build_fsdp_value_model(cfg.model, fsdp_config, mesh, self.device)
        self.critic_optimizer = build_optimizer(self.critic_module.parameters(), cfg.optim)
        self.critic_lr_scheduler = build_lr_scheduler(self.critic_optimizer, cfg.optim)
        plan = plan_device(self.device, fsdp_config=fsdp_config)
        self._optimizer_offload = plan.optimizer_offload
        self.critic = DataParallelPPOCritic(cfg, self.critic_module, self.critic_optimizer)
        self.checkpoint_manager = FSDPCheckpointManager(
            self.critic_module, self.critic_optimizer, self.critic_lr_scheduler, self.tokenizer,
            cfg.get("checkpoint", None) or {}, where="critic.checkpoint", export_dtype=plan.param_dtype,
        )

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_values(self, data: DataProto) -> DataProto:
        """``values`` [B, R] of the response tokens (0 outside the response mask)."""
        critic = self._require_init()
        data = _with_meta(
            data,
            micro_batch_size=self.config.get("forward_micro_batch_size_per_gpu", None),
            use_dynamic_bsz=self.config.get("use_dynamic_bsz", False),
            max_token_len=self.config.get("forward_max_token_len_per_gpu", None),
        )
        return DataProto.from_dict(tensors={"values": critic.compute_values(data)})

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_critic(self, data: DataProto) -> DataProto:
        """One value update; returns meta_info["metrics"] with critic/* and critic/lr."""
        critic = self._require_init()
        if self._optimizer_offload:
            load_optimizer_state(self.critic_optimizer, self.device)
        metrics = critic.update_critic(data)
        metrics["critic/lr"] = self.critic_lr_scheduler.get_last_lr()[0]
        self.critic_lr_scheduler.step()
        if self._optimizer_offload:
            offload_optimizer_state(self.critic_optimizer)
        return DataProto(meta_info={"metrics": metrics})

    def _require_init(self) -> DataParallelPPOCritic:
        if self.critic is None:
            raise RuntimeError("CriticWorker: call init_model() first")
        return self.critic

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_checkpoint(self, local_path: str, hdfs_path: Optional[str] = None, global_step: int = 0, max_ckpt_to_keep=None):
        """The ``critic.checkpoint.save_contents`` and ``local_path/huggingface/`` (weights with "hf_model")."""
        self._require_init()
        self.checkpoint_manager.save_checkpoint(
            local_path, hdfs_path=hdfs_path, global_step=global_step, max_ckpt_to_keep=max_ckpt_to_keep
        )

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_checkpoint(self, local_path: str, hdfs_path: Optional[str] = None, del_local_after_load: bool = False):
        """Restore what ``save_checkpoint`` wrote (same world size)."""
        self._require_init()
        if self._optimizer_offload:
            load_optimizer_state(self.critic_optimizer, self.device)
        self.checkpoint_manager.load_checkpoint(local_path, hdfs_path=hdfs_path, del_local_after_load=del_local_after_load)
        if self._optimizer_offload:
            offload_optimizer_state(self.critic_optimizer)
