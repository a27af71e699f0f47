"""The interface of a PPO critic (value function) implementation."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from verl.protocol import DataProto


class BasePPOCritic(ABC):
    """A value model that scores response tokens and regresses onto returns."""

    def __init__(self, config):
        self.config = config

    @abstractmethod
    def compute_values(self, data: DataProto) -> torch.Tensor:
        """Values [B, R] of the response tokens (0 on masked positions)."""

    @abstractmethod
    def update_critic(self, data: DataProto) -> dict:
        """One value-regression update over ``data``; returns metrics {name: list of values}."""
