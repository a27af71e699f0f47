"""AdamW and verl's warmup + constant / cosine learning-rate schedules, from an ``optim`` config section."""
from __future__ import annotations

from typing import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from verl.utils.torch_functional import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup


def build_optimizer(params: Iterable[torch.nn.Parameter], optim_config) -> torch.optim.AdamW:
    """AdamW over the trainable ``params`` with ``optim.{lr, betas, weight_decay}`` (verl defaults 1e-6,
    (0.9, 0.999), 0.01)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("build_optimizer: the model has no trainable parameters")
    betas = tuple(optim_config.get("betas", (0.9, 0.999)))
    if len(betas) != 2:
        raise ValueError(f"optim.betas must hold two numbers, got {list(betas)}")
    return torch.optim.AdamW(
        params,
        lr=float(optim_config.get("lr", 1e-6)),
        betas=(float(betas[0]), float(betas[1])),
        weight_decay=float(optim_config.get("weight_decay", 0.01)),
    )


def build_lr_scheduler(optimizer, optim_config) -> LambdaLR:
    """The schedule named by ``optim.warmup_style`` (constant | cosine). Warmup: ``optim.lr_warmup_steps`` when
    >= 0, else ``lr_warmup_steps_ratio * total_training_steps``; it is stepped once per update call."""
    total = optim_config.get("total_training_steps", None)
    total = int(total) if total is not None and int(total) > 0 else None
    warmup = int(optim_config.get("lr_warmup_steps", -1) if optim_config.get("lr_warmup_steps", -1) is not None else -1)
    if warmup < 0:
        ratio = float(optim_config.get("lr_warmup_steps_ratio", 0.0) or 0.0)
        if ratio > 0 and total is None:
            raise ValueError(
                f"optim.lr_warmup_steps_ratio={ratio} needs optim.total_training_steps (got "
                f"{optim_config.get('total_training_steps', None)!r})"
            )
        warmup = int(ratio * total) if total else 0
    style = optim_config.get("warmup_style", "constant")
    if style == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    if style == "cosine":
        if total is None:
            raise ValueError(
                "optim.warmup_style='cosine' needs optim.total_training_steps > 0 "
                f"(got {optim_config.get('total_training_steps', None)!r})"
            )
        return get_cosine_schedule_with_warmup(
            optimizer, warmup, total, min_lr_ratio=float(optim_config.get("min_lr_ratio", 0.0) or 0.0)
        )
    raise ValueError(f"optim.warmup_style={style!r} is not one of ['constant', 'cosine']")
