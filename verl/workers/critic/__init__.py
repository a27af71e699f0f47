"""PPO critics: ``DataParallelPPOCritic`` runs on an FSDP2-sharded HF backbone with a scalar value head."""
from .base import BasePPOCritic
from .dp_critic import DataParallelPPOCritic

__all__ = ["BasePPOCritic", "DataParallelPPOCritic"]
