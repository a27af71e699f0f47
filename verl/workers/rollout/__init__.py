"""Rollout engines: turn left-padded prompts into responses (HF ``hf_rollout``; vLLM when installed)."""
from .base import BaseRollout
from .hf_rollout import HFRollout

__all__ = ["BaseRollout", "HFRollout"]
