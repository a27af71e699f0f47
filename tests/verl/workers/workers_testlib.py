"""Shared helpers for the worker tests: PPO-shaped batches, actor/critic configs, sharded tiny models."""
from __future__ import annotations

import torch
from omegaconf import OmegaConf

from verl.protocol import DataProto


def left_padded_prompts(batch_size: int, prompt_len: int, vocab_size: int, seed: int, pad_id: int = 0):
    """input_ids / attention_mask / position_ids [B, P]: random tokens, left padding of random length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (batch_size, prompt_len), generator=g)
    lengths = torch.randint(2, prompt_len + 1, (batch_size,), generator=g)
    lengths[0] = prompt_len  # one row without padding
    mask = (torch.arange(prompt_len)[None, :] >= (prompt_len - lengths)[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad_id))
    pos = torch.clamp(mask.cumsum(-1) - 1, min=0)
    return ids, mask, pos


def ppo_batch(batch_size=8, prompt_len=6, response_len=5, vocab_size=100, seed=0, pad_id=0) -> DataProto:
    """A PPO batch with random prompts and responses of random lengths (right padding), advantages and returns."""
    g = torch.Generator().manual_seed(seed + 1)
    p_ids, p_mask, p_pos = left_padded_prompts(batch_size, prompt_len, vocab_size, seed, pad_id)
    responses = torch.randint(3, vocab_size, (batch_size, response_len), generator=g)
    r_lengths = torch.randint(1, response_len + 1, (batch_size,), generator=g)
    r_lengths[0] = response_len
    r_mask = (torch.arange(response_len)[None, :] < r_lengths[:, None]).long()
    responses = torch.where(r_mask.bool(), responses, torch.full_like(responses, pad_id))
    r_pos = p_pos[:, -1:] + torch.arange(1, response_len + 1)[None, :]
    advantages = torch.randn(batch_size, response_len, generator=g) * r_mask
    return DataProto.from_dict(
        tensors={
            "prompts": p_ids,
            "responses": responses,
            "input_ids": torch.cat([p_ids, responses], -1),
            "attention_mask": torch.cat([p_mask, r_mask], -1),
            "position_ids": torch.cat([p_pos, r_pos], -1),
            "response_mask": r_mask,
            "advantages": advantages,
            "returns": torch.randn(batch_size, response_len, generator=g) * r_mask,
            "values": torch.randn(batch_size, response_len, generator=g) * r_mask * 0.1,
        },
        meta_info={"temperature": 0.7},
    )


def actor_config(**overrides):
    """``actor_rollout_ref.actor`` as the DataParallelPPOActor sees it (per-GPU sizes, rows)."""
    base = {
        "ppo_mini_batch_size": 8,
        "ppo_micro_batch_size_per_gpu": 8,
        "ppo_epochs": 1,
        "shuffle": False,
        "clip_ratio": 0.2,
        "clip_ratio_low": None,
        "clip_ratio_high": None,
        "clip_ratio_c": 3.0,
        "entropy_coeff": 0.01,
        "use_kl_loss": False,
        "kl_loss_coef": 0.1,
        "kl_loss_type": "low_var_kl",
        "loss_agg_mode": "token-mean",
        "grad_clip": 1.0,
        "use_dynamic_bsz": False,
        "ppo_max_token_len_per_gpu": 64,
        "use_remove_padding": False,
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "warmup_style": "constant"},
    }
    base.update(overrides)
    return OmegaConf.create(base)


def critic_config(**overrides):
    """The ``critic`` section as DataParallelPPOCritic sees it (per-GPU sizes, rows)."""
    base = {
        "ppo_mini_batch_size": 8,
        "ppo_micro_batch_size_per_gpu": 8,
        "ppo_epochs": 1,
        "shuffle": False,
        "grad_clip": 1.0,
        "cliprange_value": 0.5,
        "loss_agg_mode": "token-mean",
        "use_dynamic_bsz": False,
        "ppo_max_token_len_per_gpu": 64,
        "use_remove_padding": False,
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "warmup_style": "constant"},
    }
    base.update(overrides)
    return OmegaConf.create(base)


def _optimizer(params, cfg, kind: str):
    from verl.workers.sharding import build_optimizer

    # SGD (lr 1) makes the update equal to the clipped gradient, so invariance checks compare gradients at full
    # precision; Adam's first step is ~lr * sign(grad) and would hide differences.
    return torch.optim.SGD(list(params), lr=1.0) if kind == "sgd" else build_optimizer(params, cfg.optim)


def sharded_actor(model_dir: str, cfg=None, use_remove_padding: bool = False, optimizer: str = "adamw"):
    """A DataParallelPPOActor on the FSDP2-sharded tiny model (fp32, CPU); ``optimizer`` "adamw" or "sgd"."""
    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.actor import DataParallelPPOActor
    from verl.workers.sharding import build_fsdp_causal_lm

    cfg = cfg if cfg is not None else actor_config(use_remove_padding=use_remove_padding)
    model_cfg = OmegaConf.create({"path": model_dir, "use_remove_padding": cfg.use_remove_padding})
    module = build_fsdp_causal_lm(model_cfg, None, build_device_mesh("cpu"), "cpu")
    return DataParallelPPOActor(cfg, module, _optimizer(module.parameters(), cfg, optimizer))


def sharded_critic(model_dir: str, cfg=None, optimizer: str = "adamw"):
    """A DataParallelPPOCritic (value head on the tiny backbone, head initialised from seed 0), FSDP2 on CPU."""
    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.critic import DataParallelPPOCritic
    from verl.workers.sharding import build_fsdp_value_model

    cfg = cfg if cfg is not None else critic_config()
    model_cfg = OmegaConf.create({"path": model_dir, "use_remove_padding": cfg.use_remove_padding})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = build_fsdp_value_model(model_cfg, None, build_device_mesh("cpu"), "cpu")
    return DataParallelPPOCritic(cfg, module, _optimizer(module.parameters(), cfg, optimizer))


def full_params(module) -> dict[str, torch.Tensor]:
    """Every parameter, gathered to a full CPU tensor (DTensor shards included)."""
    out = {}
    for name, p in module.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = t.detach().clone().cpu()
    return out


def record_step_gradients(module, optimizer) -> list[dict[str, torch.Tensor]]:
    """A list that receives, at each ``optimizer.step()``, every parameter's gradient as the optimizer sees it
    (after clipping), gathered to a full CPU tensor. Gathering is collective: every rank must step."""
    steps: list[dict[str, torch.Tensor]] = []

    def hook(*_):
        grads = {}
        for name, p in module.named_parameters():
            grads[name] = (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).detach().clone().cpu()
        steps.append(grads)

    optimizer.register_step_pre_hook(hook)
    return steps


def with_old_log_probs(actor, data: DataProto, noise: float = 0.0, seed: int = 0) -> DataProto:
    """``data`` plus old_log_probs from the actor itself (+ noise, so that some ratios get clipped)."""
    meta = {"micro_batch_size": 4, "temperature": data.meta_info["temperature"]}
    log_probs, _ = actor.compute_log_prob(DataProto(batch=data.batch, meta_info=meta))
    g = torch.Generator().manual_seed(seed)
    data.batch["old_log_probs"] = log_probs + noise * torch.randn(log_probs.shape, generator=g)
    return data
