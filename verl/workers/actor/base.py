"""The interface of a PPO actor (policy) implementation."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from verl.protocol import DataProto


class BasePPOActor(ABC):
    """A policy that scores responses and updates itself from PPO/GRPO batches."""

    def __init__(self, config):
        self.config = config

    @abstractmethod
    def compute_log_prob(self, data: DataProto, calculate_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities [B, R] of ``responses`` under the policy (and entropies [B, R] or None)."""

    @abstractmethod
    def update_policy(self, data: DataProto) -> dict:
        """One PPO update over ``data``; returns metrics {name: list of values}."""
