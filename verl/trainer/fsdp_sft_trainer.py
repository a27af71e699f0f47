"""Supervised fine-tuning on the same FSDP2 model code as the PPO workers (verl's FSDPSFTTrainer).

Runs as one process (one rank: the plain module, as the PPO workers use it) or under torchrun (one FSDP2 rank
per process, gloo on CPU / nccl on GPU). Each global batch is split evenly over the ranks, then into micro-batches; the loss is the cross-entropy
of the response tokens, averaged over every response token of the global batch, so the gradient does not
depend on the micro-batch size or the number of ranks.
"""
from __future__ import annotations

import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf, open_dict

from verl.utils.checkpoint import trainer_checkpoint as ckpt
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
from verl.utils.dataset import ResumableDataLoader, SFTDataset
from verl.utils.fsdp_utils import build_device_mesh, fsdp2_clip_grad_norm_, mixed_precision_policy
from verl.utils.tracking import Tracking
from verl.workers.sharding import build_fsdp_causal_lm, build_lr_scheduler, build_optimizer, load_tokenizer


def _stack(items: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def loss_positions(loss_mask: torch.Tensor) -> torch.Tensor:
    """Positions [K] (shared by the rows of a micro-batch) whose next token is a response target in some row:
    loss_mask [B, T] -> [K], ascending. Only these need logits: the prompt positions before the earliest response
    in the micro-batch and the padding after the longest one are never projected onto the vocabulary."""
    return loss_mask[:, 1:].bool().any(dim=0).nonzero().squeeze(-1)


def response_token_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor,
                        positions: torch.Tensor | None = None) -> torch.Tensor:
    """Summed next-token cross-entropy over response targets.

    logits [B, T, V] for every position, or [B, K, V] for ``positions`` [K] only (see ``loss_positions``);
    input_ids [B, T], loss_mask [B, T] (1 on response tokens) -> scalar (sum, not mean).
    Position t predicts token t+1, so the mask of the TARGET token selects the term.
    """
    if positions is None:
        positions = torch.arange(input_ids.shape[1] - 1, device=input_ids.device)
        logits = logits[:, :-1]
    targets = input_ids[:, positions + 1]
    mask = loss_mask[:, positions + 1].to(logits.dtype)
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return (ce.view_as(targets) * mask).sum()


class FSDPSFTTrainer:
    """Train ``model.partial_pretrain`` on parquet prompt/response pairs; see configs/sft_trainer.yaml."""

    def __init__(self, config: DictConfig):
        self.config = config
        device = config.trainer.device
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.mesh = build_device_mesh(self.device)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self._check_batch_sizes()
        model_cfg = config.model
        self.tokenizer = load_tokenizer(os.path.expanduser(str(model_cfg.partial_pretrain)),
                                        bool(model_cfg.trust_remote_code))
        data = config.data
        self.train_dataset = SFTDataset(data.train_files, self.tokenizer, data)
        self.val_dataset = SFTDataset(data.val_files, self.tokenizer, data) if data.val_files else None
        seed = data.seed if data.seed is not None else config.trainer.seed
        self.loader = ResumableDataLoader(self.train_dataset, int(data.train_batch_size), _stack,
                                          shuffle=bool(data.shuffle), seed=int(seed))
        t = config.trainer
        self.total_steps = int(t.total_training_steps) if t.total_training_steps else \
            len(self.loader) * int(t.total_epochs)
        self._build_model()
        self.global_step = 0

    def _check_batch_sizes(self) -> None:
        data = self.config.data
        micro = data.micro_batch_size_per_gpu
        if data.micro_batch_size is not None:
            micro = int(data.micro_batch_size) // self.world
        per_rank, rem = divmod(int(data.train_batch_size), self.world)
        if rem or micro is None or micro <= 0 or per_rank % micro:
            raise ValueError(f"data.train_batch_size={data.train_batch_size} must split over {self.world} ranks into "
                             f"micro-batches of data.micro_batch_size_per_gpu={micro}")
        self.micro_batch_size = int(micro)

    def _build_model(self) -> None:
        cfg = self.config
        model_cfg = OmegaConf.create({"path": os.path.expanduser(str(cfg.model.partial_pretrain)),
                                      "override_config": OmegaConf.to_container(cfg.model.override_config),
                                      "enable_gradient_checkpointing": cfg.model.enable_gradient_checkpointing,
                                      "use_remove_padding": cfg.model.use_remove_padding,
                                      "trust_remote_code": cfg.model.trust_remote_code})
        fsdp = OmegaConf.to_container(cfg.model.fsdp_config, resolve=True)
        fsdp["param_offload"] = bool(fsdp.get("param_offload") or fsdp.get("offload_params") or fsdp.get("cpu_offload"))
        self.model = build_fsdp_causal_lm(model_cfg, fsdp, self.mesh, self.device, trainable=True)
        optim = cfg.optim
        self.optimizer = build_optimizer(self.model.parameters(), optim)
        self.lr_scheduler = build_lr_scheduler(self.optimizer, {
            "total_training_steps": self.total_steps, "lr_warmup_steps": -1,
            "lr_warmup_steps_ratio": optim.warmup_steps_ratio, "warmup_style": optim.lr_scheduler,
            "min_lr_ratio": optim.min_lr_ratio})
        self.checkpoint_manager = FSDPCheckpointManager(self.model, self.optimizer, self.lr_scheduler, self.tokenizer,
                                                        export_dtype=mixed_precision_policy(fsdp, self.device).param_dtype)

    # -- loss ------------------------------------------------------------------------------------
    def _rank_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        per = batch["input_ids"].shape[0] // self.world
        return {k: v[self.rank * per:(self.rank + 1) * per].to(self.device) for k, v in batch.items()}

    def _global_token_count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        count = batch["loss_mask"][:, 1:].sum().to(self.device, torch.float32)
        if self.world > 1:
            dist.all_reduce(count)
        return count.clamp(min=1)

    def _micro_batches(self, rows: dict[str, torch.Tensor]):
        n = rows["input_ids"].shape[0]
        for start in range(0, n, self.micro_batch_size):
            yield {k: v[start:start + self.micro_batch_size] for k, v in rows.items()}

    def _forward_loss_sum(self, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        positions = loss_positions(mb["loss_mask"])  # the vocabulary projection only where a target follows
        logits = self.model(input_ids=mb["input_ids"], attention_mask=mb["attention_mask"],
                            position_ids=mb["position_ids"], use_cache=False, logits_to_keep=positions).logits
        return response_token_loss(logits, mb["input_ids"], mb["loss_mask"], positions)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimizer step on a global batch. Returns train/loss (token mean), train/lr, train/grad_norm."""
        self.model.train()
        tokens = self._global_token_count(batch)
        rows = self._rank_rows(batch)
        total = torch.zeros((), device=self.device)
        for mb in self._micro_batches(rows):
            loss_sum = self._forward_loss_sum(mb)
            # FSDP2 averages gradients over ranks; scaling by world size turns that into the global token mean
            (loss_sum * self.world / tokens).backward()
            total += loss_sum.detach()
        grad_norm = fsdp2_clip_grad_norm_(self.model.parameters(), float(self.config.optim.clip_grad))
        lr = self.lr_scheduler.get_last_lr()[0]
        if torch.isfinite(grad_norm):
            self.optimizer.step()
        else:
            print(f"[sft] step {self.global_step}: grad norm {grad_norm.item()} is not finite; step skipped")
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()
        if self.world > 1:
            dist.all_reduce(total)
        return {"train/loss": (total / tokens).item(), "train/lr": lr, "train/grad_norm": grad_norm.item()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """val/loss: response-token mean cross-entropy over the whole val set."""
        if self.val_dataset is None:
            return {}
        self.model.eval()
        per_step = int(self.config.data.train_batch_size)
        n = (len(self.val_dataset) // self.world) * self.world
        total = torch.zeros((), device=self.device)
        tokens = torch.zeros((), device=self.device)
        for start in range(0, n, per_step):
            batch = _stack([self.val_dataset[i] for i in range(start, min(start + per_step, n))])
            tokens += batch["loss_mask"][:, 1:].sum().to(self.device, torch.float32)
            for mb in self._micro_batches(self._rank_rows(batch)):
                total += self._forward_loss_sum(mb)
        if self.world > 1:
            dist.all_reduce(total)
        return {"val/loss": (total / tokens.clamp(min=1)).item()}

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> str:
        root = self.config.trainer.default_local_dir
        path = ckpt.step_dir(root, self.global_step)
        self.checkpoint_manager.save_checkpoint(path, global_step=self.global_step)
        if self.rank == 0:
            ckpt.save_driver_state(path, self.loader.state_dict(), {"global_step": self.global_step})
            ckpt.write_tracker(root, self.global_step)
        if self.world > 1:
            dist.barrier()
        return path

    def load_checkpoint(self, path: str) -> None:
        self.checkpoint_manager.load_checkpoint(path)
        loader_state, _ = ckpt.load_driver_state(path)
        self.loader.load_state_dict(loader_state)
        self.global_step = ckpt.parse_global_step(path)

    # -- loop ------------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train for trainer.total_training_steps; returns the last step's metrics."""
        t = self.config.trainer
        if t.resume_path:
            self.load_checkpoint(os.path.expanduser(str(t.resume_path)))
        tracker = Tracking(t.project_name, t.experiment_name, t.logger if self.rank == 0 else [],
                           config=OmegaConf.to_container(self.config, resolve=True), local_dir=t.default_local_dir,
                           total_steps=self.total_steps) if self.rank == 0 else None
        metrics: dict[str, float] = {}
        try:
            while self.global_step < self.total_steps:
                for batch in self.loader:
                    self.global_step += 1
                    start = time.perf_counter()
                    metrics = self.training_step(batch)
                    metrics["timing_s/step"] = time.perf_counter() - start
                    is_last = self.global_step >= self.total_steps
                    if is_last or (int(t.test_freq) > 0 and self.global_step % int(t.test_freq) == 0):
                        metrics.update(self.validate())
                    if is_last or (int(t.save_freq) > 0 and self.global_step % int(t.save_freq) == 0):
                        self.save_checkpoint()
                    if tracker is not None:
                        tracker.log(metrics, step=self.global_step)
                    if is_last:
                        break
        finally:
            if tracker is not None:
                tracker.finish()
        return metrics


def prepare_sft_config(config: DictConfig) -> DictConfig:
    """Check the SFT keys that would fail late; returns the config."""
    errors = []
    if config.trainer.device not in ("auto", "cpu", "cuda"):
        errors.append(f"trainer.device={config.trainer.device!r} is not one of auto, cpu, cuda")
    if config.data.truncation not in ("error", "left", "right"):
        errors.append(f"data.truncation={config.data.truncation!r} is not one of error, left, right")
    if config.optim.lr_scheduler not in ("cosine", "constant"):
        errors.append(f"optim.lr_scheduler={config.optim.lr_scheduler!r} is not one of cosine, constant")
    if config.ulysses_sequence_parallel_size != 1:
        errors.append(f"ulysses_sequence_parallel_size={config.ulysses_sequence_parallel_size}: not supported (use 1)")
    if config.trainer.default_hdfs_dir is not None:
        errors.append("trainer.default_hdfs_dir: HDFS is not supported (leave it null)")
    if config.data.micro_batch_size is not None and config.data.micro_batch_size_per_gpu is not None:
        with open_dict(config):
            config.data.micro_batch_size_per_gpu = None  # the legacy global key wins when given explicitly
    if errors:
        from verl.trainer.config_check import ConfigError

        raise ConfigError("Invalid SFT config:\n  - " + "\n  - ".join(errors))
    if not math.isfinite(float(config.optim.lr)):
        raise ValueError(f"optim.lr={config.optim.lr} is not a finite number")
    return config
