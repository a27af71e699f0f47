"""Data-parallel PPO critic: an HF backbone with a scalar value head (``AutoModelForTokenClassification`` with
``num_labels=1``), sharded with FSDP2. The clipped value loss lives in ``core_algos.compute_value_loss``; micro-batch
losses are re-weighted exactly as in the actor so gradients do not depend on micro-batching or the DP size."""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import nn

from verl.protocol import DataProto
from verl.trainer.ppo import core_algos
from verl.utils.fsdp_utils import compute_device
from verl.workers.actor.micro_batching import response_mask_of, restore_order, split_micro_batches
from verl.workers.actor.padding import pack_batch, resolve_remove_padding, unpack
from verl.workers.actor.update_loop import MicroBatchWeights, clipped_optimizer_step, run_mini_batch_updates

from .base import BasePPOCritic


class DataParallelPPOCritic(BasePPOCritic):
    """PPO critic over an FSDP2 (or plain) token-classification model with one output.

    ``config`` is the ``critic`` section with per-GPU sizes normalised by the worker: ppo_mini_batch_size,
    ppo_micro_batch_size_per_gpu, forward_micro_batch_size_per_gpu, ppo_epochs, shuffle, grad_clip, cliprange_value,
    loss_agg_mode, use_dynamic_bsz, ppo_max_token_len_per_gpu, forward_max_token_len_per_gpu, use_remove_padding.
    """

    def __init__(
        self,
        config,
        critic_module: nn.Module,
        critic_optimizer: Optional[torch.optim.Optimizer] = None,
        device: Optional[str] = None,
    ):
        super().__init__(config)
        self.critic_module = critic_module
        self.critic_optimizer = critic_optimizer
        self.use_remove_padding = resolve_remove_padding(bool(config.get("use_remove_padding", False)), critic_module)
        self.dp_group = None
        self.device = torch.device(device) if device is not None else compute_device(critic_module)

    def _forward_micro_batch(self, micro_batch) -> torch.Tensor:
        """Values [b, R]: the value head's output at the position before each response token (the state)."""
        response_length = micro_batch["responses"].shape[-1]
        input_ids = micro_batch["input_ids"]
        attention_mask = micro_batch["attention_mask"]
        position_ids = micro_batch["position_ids"]
        with warnings.catch_warnings():
            # FSDP2 warns that the token-classification logits are a view; nothing here modifies them in place
            warnings.filterwarnings("ignore", message=".*returned a view tensor.*")
            if self.use_remove_padding:
                ids, pos, indices = pack_batch(input_ids, attention_mask, position_ids)
                out = self.critic_module(input_ids=ids, position_ids=pos, attention_mask=None, use_cache=False)
                values = unpack(out.logits[0, :, 0].float(), indices, *input_ids.shape)
            else:
                out = self.critic_module(
                    input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
                )
                values = out.logits[..., 0].float()
        return values[:, -response_length - 1 : -1]

    @torch.no_grad()
    def compute_values(self, data: DataProto) -> torch.Tensor:
        """Values [B, R] (zero outside ``response_mask``). meta_info: ``micro_batch_size``, optional
        ``use_dynamic_bsz`` / ``max_token_len``."""
        meta = data.meta_info
        keys = ["responses", "input_ids", "attention_mask", "position_ids"]
        if "response_mask" in data.batch.keys():
            keys.append("response_mask")
        micro_batches, order = split_micro_batches(
            data.select(batch_keys=keys),
            meta.get("micro_batch_size"),
            bool(meta.get("use_dynamic_bsz", False)),
            meta.get("max_token_len"),
            self.dp_group,
        )
        values = []
        for micro in micro_batches:
            batch = micro.batch.to(self.device)
            values.append((self._forward_micro_batch(batch) * response_mask_of(batch)).cpu())
        return restore_order(torch.cat(values), order)

    def _optimizer_step(self) -> torch.Tensor:
        return clipped_optimizer_step(self.critic_module, self.critic_optimizer, self.config.get("grad_clip", 1.0),
                                      "critic")

    def update_critic(self, data: DataProto) -> dict:
        """Value regression over mini-/micro-batches. Batch: input_ids, responses, attention_mask, position_ids,
        values (old), returns, response_mask. Returns {critic/vf_loss, critic/vf_clipfrac, critic/vpred_mean,
        critic/grad_norm: one value per mini-batch}."""
        cfg = self.config
        if self.critic_optimizer is None:
            raise RuntimeError("update_critic needs an optimizer; this critic was built for inference only")
        self.critic_module.train()
        loss_agg_mode = cfg.get("loss_agg_mode", "token-mean")
        keys = ["input_ids", "responses", "attention_mask", "position_ids", "values", "returns"]
        if "response_mask" in data.batch.keys():
            keys.append("response_mask")
        missing = [k for k in keys if k not in data.batch.keys()]
        if missing:
            raise KeyError(f"update_critic: data.batch lacks {missing} (has {sorted(data.batch.keys())})")
        data = data.select(batch_keys=keys)

        def micro_step(batch, response_mask: torch.Tensor, weights: MicroBatchWeights) -> list[float]:
            vpreds = self._forward_micro_batch(batch)
            # this micro-batch's share of the mini-batch loss, times the DP size (see micro_batching)
            vf_loss, vf_clipfrac = core_algos.compute_value_loss(
                vpreds=vpreds,
                returns=batch["returns"],
                values=batch["values"],
                response_mask=response_mask,
                cliprange_value=cfg.get("cliprange_value", 0.5),
                loss_agg_mode=loss_agg_mode,
                **weights.agg_kwargs,
            )
            vf_loss.backward()
            masked_vpred_sum = float((vpreds.detach() * response_mask).sum().item())
            global_tokens = weights.global_tokens
            return [
                vf_loss.item() / weights.dp_size,
                float(vf_clipfrac) * weights.token_share,
                masked_vpred_sum / global_tokens if global_tokens > 0 else 0.0,
            ]

        metrics = run_mini_batch_updates(data, cfg, micro_step, self.critic_optimizer, self._optimizer_step,
                                         ("vf_loss", "vf_clipfrac", "vpred_mean"), "critic", self.device, self.dp_group)
        return dict(metrics)
