"""The interface every rollout engine (HF, vLLM) implements."""
from __future__ import annotations

from abc import ABC, abstractmethod

from verl.protocol import DataProto


class BaseRollout(ABC):
    """A rollout engine: one response per prompt row (the driver has already repeated prompts ``rollout.n`` times)."""

    @abstractmethod
    def generate_sequences(self, prompts: DataProto) -> DataProto:
        """Generate responses.

        Input batch: ``input_ids``, ``attention_mask``, ``position_ids`` [B, P], left-padded; meta_info
        ``eos_token_id``, ``pad_token_id`` and optional ``do_sample``, ``validate``, ``response_length``.
        Output batch: ``prompts`` [B, P], ``responses`` [B, R], ``input_ids`` / ``attention_mask`` /
        ``position_ids`` [B, P+R], ``response_mask`` [B, R]; the input's non-tensor batch is carried through.
        meta_info ``metrics``: numbers with verl's names; wall times in seconds as ``timing_s/<name>`` (e.g.
        ``timing_s/generate_sequences``), which the driver logs under those names.
        """
