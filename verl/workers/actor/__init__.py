"""PPO actors: ``DataParallelPPOActor`` runs on an FSDP2-sharded HF causal LM."""
from .base import BasePPOActor
from .dp_actor import DataParallelPPOActor

__all__ = ["BasePPOActor", "DataParallelPPOActor"]
