"""Data-parallel PPO actor on an FSDP2-sharded HF causal LM.

The math (clipped policy loss, KL penalty, loss aggregation) lives in ``verl.trainer.ppo.core_algos``; this file
only runs forward/backward over micro-batches and steps the optimizer. Each micro-batch loss is normalised by the
whole mini-batch's token count across micro-batches and DP ranks, so the accumulated gradient is the gradient of
the mini-batch loss whatever the micro-batching or the number of ranks (see ``micro_batching``).
"""
from __future__ import annotations

from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from verl.protocol import DataProto
from verl.trainer.ppo import core_algos
from verl.utils.fsdp_utils import compute_device
from verl.utils.torch_functional import (entropy_from_logits, logprobs_and_entropy_from_logits,
                                         logprobs_from_logits)

from .base import BasePPOActor
from .micro_batching import restore_order, split_micro_batches
from .padding import pack_batch, resolve_remove_padding, response_predictor_positions
from .update_loop import MicroBatchWeights, clipped_optimizer_step, run_mini_batch_updates


def _policy_loss_config(cfg) -> DictConfig:
    """A detached copy of the actor config for the policy loss, which reads its clip ratios and, as in verl, the
    current mini-batch's agg_loss normalisers from ``global_batch_info`` (set here, never in the worker's config)."""
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg))


class DataParallelPPOActor(BasePPOActor):
    """PPO actor over an FSDP2 (or plain) HF causal LM.

    ``config`` is ``actor_rollout_ref.actor`` with per-GPU sizes already normalised by the worker:
    ppo_mini_batch_size and ppo_micro_batch_size_per_gpu in rows, ppo_epochs, shuffle, clip_ratio(_low/_high/_c),
    entropy_coeff, use_kl_loss, kl_loss_coef, kl_loss_type, loss_agg_mode, loss_scale_factor, policy_loss.loss_mode
    (a name in core_algos' policy-loss registry), grad_clip, use_dynamic_bsz, ppo_max_token_len_per_gpu,
    use_remove_padding.
    """

    def __init__(
        self,
        config,
        actor_module: nn.Module,
        actor_optimizer: Optional[torch.optim.Optimizer] = None,
        device: Optional[str] = None,
    ):
        super().__init__(config)
        self.actor_module = actor_module
        self.actor_optimizer = actor_optimizer
        self.use_remove_padding = resolve_remove_padding(bool(config.get("use_remove_padding", False)), actor_module)
        self.dp_group = None  # the default (world) group: FSDP shards over all ranks
        # where inputs go: the compute device, which differs from the parameters' when FSDP offloads them to CPU
        self.device = torch.device(device) if device is not None else compute_device(actor_module)

    # ------------------------------------------------------------------------------------------------------------
    def _forward_micro_batch(
        self, micro_batch, temperature: float, calculate_entropy: bool = False, entropy_grad: bool = True
    ) -> tuple[Optional[torch.Tensor], torch.Tensor]:
        """Entropy [b, R] (or None) and log-probs [b, R] of ``responses`` under logits / temperature.

        The vocabulary projection runs only on the hidden states that predict a response token (the last prompt
        token and the response tokens but the last), never on the rest of the prompt: with long prompts the
        projection (and the [*, V] logits) would otherwise be mostly spent on positions nobody scores. With
        ``entropy_grad`` False the entropy comes detached, from the same pass over the logits as the log-probs.
        """
        responses = micro_batch["responses"]
        response_length = responses.shape[-1]
        input_ids = micro_batch["input_ids"]
        attention_mask = micro_batch["attention_mask"]
        position_ids = micro_batch["position_ids"]

        if self.use_remove_padding:
            ids, pos, indices = pack_batch(input_ids, attention_mask, position_ids)
            keep, valid = response_predictor_positions(attention_mask, indices, response_length)
            logits = self.actor_module(
                input_ids=ids, position_ids=pos, attention_mask=None, use_cache=False, logits_to_keep=keep
            ).logits[0]  # [N, V]: one row per real response token
            labels = responses[valid]
        else:
            seqlen = input_ids.shape[-1]
            keep = torch.arange(seqlen - response_length - 1, seqlen - 1, device=input_ids.device)
            logits = self.actor_module(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
                logits_to_keep=keep,
            ).logits  # [b, R, V], position t predicts response token t
            labels = responses
        logits = logits.float()
        if temperature != 1.0:
            logits = logits / temperature

        entropy = None
        if not calculate_entropy:
            log_probs = logprobs_from_logits(logits, labels)
        elif entropy_grad and torch.is_grad_enabled():
            log_probs, entropy = logprobs_from_logits(logits, labels), entropy_from_logits(logits)
        else:
            log_probs, entropy = logprobs_and_entropy_from_logits(logits, labels)

        if self.use_remove_padding:  # back to [b, R], 0 where there is no response token
            log_probs = log_probs.new_zeros(valid.shape).masked_scatter(valid, log_probs)
            if entropy is not None:
                entropy = entropy.new_zeros(valid.shape).masked_scatter(valid, entropy)
        return entropy, log_probs

    def _optimizer_step(self) -> torch.Tensor:
        """Clip gradients and step; skip the step (with a warning) when the gradient norm is not finite."""
        return clipped_optimizer_step(self.actor_module, self.actor_optimizer, self.config.get("grad_clip", 1.0),
                                      "actor")

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def compute_log_prob(self, data: DataProto, calculate_entropy: bool = False):
        """Log-probs [B, R] of ``data.batch['responses']`` (and entropies [B, R] when ``calculate_entropy``).

        meta_info: ``micro_batch_size`` (rows per forward), ``temperature``, optional ``use_dynamic_bsz`` and
        ``max_token_len``. Batch: responses, input_ids, attention_mask, position_ids.
        """
        meta = data.meta_info
        temperature = float(meta.get("temperature", 1.0))
        keys = ["responses", "input_ids", "attention_mask", "position_ids"]
        micro_batches, order = split_micro_batches(
            data.select(batch_keys=keys),
            meta.get("micro_batch_size"),
            bool(meta.get("use_dynamic_bsz", False)),
            meta.get("max_token_len"),
            self.dp_group,
        )
        log_probs, entropys = [], []
        for micro in micro_batches:
            batch = micro.batch.to(self.device)
            entropy, log_prob = self._forward_micro_batch(batch, temperature, calculate_entropy, entropy_grad=False)
            log_probs.append(log_prob.cpu())
            if entropy is not None:
                entropys.append(entropy.cpu())
        log_probs = restore_order(torch.cat(log_probs), order)
        entropys = restore_order(torch.cat(entropys), order) if calculate_entropy else None
        return log_probs, entropys

    def update_policy(self, data: DataProto) -> dict:
        """PPO update: ``ppo_epochs`` passes over mini-batches of ``ppo_mini_batch_size`` rows, each one optimizer
        step accumulated over micro-batches.

        Batch: responses, input_ids, attention_mask, position_ids, advantages, response_mask (or derived from
        attention_mask), ref_log_prob when use_kl_loss, old_log_probs; meta_info ``temperature``.

        On-policy shortcut: without ``old_log_probs`` the update must be a single optimizer step (ppo_epochs 1 and
        the batch is one mini-batch); the old policy then IS the current one, so the update's own log-probs,
        detached, stand for the old ones (ratio 1, the same gradient as with a separate old-log-prob pass).

        Returns metrics {actor/pg_loss, actor/pg_clipfrac, actor/pg_clipfrac_lower, actor/ppo_kl, actor/entropy_loss,
        actor/kl_loss, actor/kl_coef, actor/grad_norm: one value per mini-batch}; each loss value is the exact
        mini-batch value (token-weighted over micro-batches and ranks). actor/entropy_loss (verl <= 0.3's name) is the
        entropy as the loss aggregates it, during the update; it carries gradients only when entropy_coeff != 0. The
        rollout policy's entropy, actor/entropy, is the old-log-prob pass's (the trainer logs it); only the on-policy
        shortcut, whose single forward IS that pass, reports actor/entropy here (token mean).
        """
        cfg = self.config
        if self.actor_optimizer is None:
            raise RuntimeError("update_policy needs an optimizer; this actor was built for inference only")
        self.actor_module.train()
        temperature = float(data.meta_info.get("temperature", 1.0))
        loss_agg_mode = cfg.get("loss_agg_mode", "token-mean")
        use_kl_loss = bool(cfg.get("use_kl_loss", False))
        entropy_coeff = float(cfg.get("entropy_coeff", 0.0))
        policy_loss_fn = core_algos.get_policy_loss_fn((cfg.get("policy_loss", None) or {}).get("loss_mode", "vanilla"))
        loss_config = _policy_loss_config(cfg)
        mini_size = int(cfg.ppo_mini_batch_size)
        epochs = int(cfg.get("ppo_epochs", 1))

        keys = ["responses", "input_ids", "attention_mask", "position_ids", "advantages"]
        on_policy = "old_log_probs" not in data.batch.keys()
        if on_policy and (epochs != 1 or len(data) > mini_size):
            raise KeyError(
                f"update_policy: data.batch lacks 'old_log_probs', which only a single optimizer step may do without "
                f"(here ppo_epochs={epochs}, {len(data)} rows in mini-batches of {mini_size})"
            )
        if not on_policy:
            keys.append("old_log_probs")
        if "response_mask" in data.batch.keys():
            keys.append("response_mask")
        if use_kl_loss:
            keys.append("ref_log_prob")
        missing = [k for k in keys if k not in data.batch.keys()]
        if missing:
            raise KeyError(f"update_policy: data.batch lacks {missing} (has {sorted(data.batch.keys())})")
        data = data.select(batch_keys=keys)

        kl_loss_coef = float(cfg.get("kl_loss_coef", 0.001))

        def micro_step(batch, response_mask: torch.Tensor, weights: MicroBatchWeights) -> list[float]:
            entropy, log_prob = self._forward_micro_batch(
                batch, temperature, calculate_entropy=True, entropy_grad=entropy_coeff != 0
            )
            # every loss below is this micro-batch's share of the mini-batch loss, times the DP size
            loss_config.global_batch_info = dict(weights.agg_kwargs)
            pg_loss, pg_metrics = policy_loss_fn(
                old_log_prob=log_prob.detach() if on_policy else batch["old_log_probs"],
                log_prob=log_prob,
                advantages=batch["advantages"],
                response_mask=response_mask,
                loss_agg_mode=loss_agg_mode,
                config=loss_config,
                rollout_is_weights=None,
            )
            pg_clipfrac, ppo_kl, pg_clipfrac_lower = (
                float(pg_metrics.get(f"actor/{name}", 0.0)) for name in ("pg_clipfrac", "ppo_kl", "pg_clipfrac_lower")
            )
            entropy_loss = core_algos.agg_loss(entropy, response_mask, loss_agg_mode, **weights.agg_kwargs)
            policy_loss = pg_loss - entropy_coeff * entropy_loss if entropy_coeff != 0 else pg_loss
            kl_loss = torch.zeros(())
            if use_kl_loss:
                kld = core_algos.kl_penalty(
                    logprob=log_prob, ref_logprob=batch["ref_log_prob"], kl_penalty=cfg.get("kl_loss_type", "low_var_kl")
                )
                kl_loss = core_algos.agg_loss(kld, response_mask, loss_agg_mode, **weights.agg_kwargs)
                policy_loss = policy_loss + kl_loss_coef * kl_loss
            policy_loss.backward()
            world, share = weights.dp_size, weights.token_share
            stats = [
                pg_loss.item() / world,
                pg_clipfrac * share,
                pg_clipfrac_lower * share,
                ppo_kl * share,
                entropy_loss.item() / world,
                kl_loss.item() / world,
            ]
            if on_policy:
                stats.append((entropy.detach() * response_mask).sum().item() / max(weights.global_tokens, 1.0))
            return stats

        metrics = run_mini_batch_updates(
            data, cfg, micro_step, self.actor_optimizer, self._optimizer_step,
            ("pg_loss", "pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "entropy_loss", "kl_loss")
            + (("entropy",) if on_policy else ()), "actor",
            self.device, self.dp_group,
        )
        metrics["actor/kl_coef"] = [kl_loss_coef if use_kl_loss else 0.0] * len(metrics["actor/grad_norm"])
        return dict(metrics)
