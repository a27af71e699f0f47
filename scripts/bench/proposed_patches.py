"""Measure proposed hot-path fixes before they land: run_ours.py with monkeypatches applied.

    .venv/bin/python scripts/bench/train_throughput.py            # the "patched" side (default) runs this file
    RECR1_BENCH_PATCHES=sampler .venv/bin/python scripts/bench/train_throughput.py --sides ours,patched ...

This file is a measuring tool for the owners of verl/workers and verl/trainer (see RESULTS.md, "Hot path"):
each patch below is the smallest version of a proposed change, so its gain can be measured on the benchmark's
work. It is not used by the project; delete a patch once its change has landed.

Patches (comma-separated in RECR1_BENCH_PATCHES; default: all):
* ``sampler``: draw the next token by inverse CDF (cumsum + one uniform per row + searchsorted) instead of
  ``torch.multinomial``, which on CPU draws an exponential variate for every vocabulary entry (about 9x slower
  for [32, 1.6k] here). Same distribution.
* ``on_policy``: with one optimizer update per batch (ppo_epochs 1, one mini-batch) the old log-probs equal the
  update's own log-probs, so skip the old-log-prob forward and use ``log_prob.detach()`` (what TRL does).
  Here the forward is skipped by returning zeros from the actor's compute_log_prob; the entropy metric is lost.
* ``plain_1rank``: on a one-rank mesh, do not wrap the model with FSDP2 (no hooks per forward, plain tensors
  instead of DTensors in the optimizer and grad clipping).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ALL_PATCHES = ("sampler", "on_policy", "plain_1rank")


def inverse_cdf_sample(probs, generator=None):
    """One token id per row [B] drawn from ``probs`` [B, V] (rows sum to ~1): cumsum, one uniform per row,
    searchsorted. ``right=True`` picks the first token whose cdf exceeds u, so a zero-probability token is never
    drawn (its cdf equals its predecessor's)."""
    import torch

    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def patch_sampler() -> None:
    import torch

    import verl.workers.rollout.hf_rollout as hf_rollout

    def sample_next_token(logits, do_sample, temperature=1.0, top_k=None, top_p=None, generator=None):
        logits = logits.float()
        if not do_sample or temperature <= 0:
            return torch.argmax(logits, dim=-1)
        probs = torch.softmax(hf_rollout.filter_logits(logits / temperature, top_k=top_k, top_p=top_p), dim=-1)
        return inverse_cdf_sample(probs, generator)

    hf_rollout.sample_next_token = sample_next_token


def patch_on_policy() -> None:
    import torch

    from verl.trainer.ppo import core_algos
    from verl.workers.actor import dp_actor

    original_loss = core_algos.compute_policy_loss
    original_log_prob = dp_actor.DataParallelPPOActor.compute_log_prob

    def compute_log_prob(self, data, calculate_entropy=False):
        if self.actor_optimizer is None:  # the reference policy: unchanged
            return original_log_prob(self, data, calculate_entropy)
        responses = data.batch["responses"]
        zeros = torch.zeros(responses.shape, dtype=torch.float32)
        return zeros, (zeros.clone() if calculate_entropy else None)

    def compute_policy_loss(old_log_prob, log_prob, *args, **kwargs):
        return original_loss(log_prob.detach(), log_prob, *args, **kwargs)

    dp_actor.DataParallelPPOActor.compute_log_prob = compute_log_prob
    core_algos.compute_policy_loss = compute_policy_loss


def patch_plain_1rank() -> None:
    import torch.distributed as dist

    from verl.workers.sharding import fsdp_model

    original = fsdp_model.apply_fsdp2

    def apply_fsdp2(model, mesh, *args, **kwargs):
        if dist.is_initialized() and dist.get_world_size() == 1:
            return model
        return original(model, mesh, *args, **kwargs)

    fsdp_model.apply_fsdp2 = apply_fsdp2


def apply(names) -> None:
    for name in names:
        if name not in ALL_PATCHES:
            raise SystemExit(f"RECR1_BENCH_PATCHES: unknown patch {name!r}; known: {', '.join(ALL_PATCHES)}")
        globals()[f"patch_{name}"]()
    print(f"[proposed_patches] applied: {', '.join(names) or 'none'}", flush=True)


if __name__ == "__main__":
    chosen = os.environ.get("RECR1_BENCH_PATCHES", ",".join(ALL_PATCHES))
    apply([n.strip() for n in chosen.split(",") if n.strip()])
    import run_ours

    run_ours.main()
