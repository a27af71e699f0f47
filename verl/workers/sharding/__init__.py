"""Building FSDP2-sharded HF models, their optimizers and learning-rate schedules for the workers."""
from .fsdp_model import build_fsdp_causal_lm, build_fsdp_value_model, load_tokenizer
from .optimizer import build_lr_scheduler, build_optimizer

__all__ = ["build_fsdp_causal_lm", "build_fsdp_value_model", "load_tokenizer", "build_lr_scheduler", "build_optimizer"]
