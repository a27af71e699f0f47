"""DAPO's soft overlong punishment (arXiv:2503.14476, section 3.4), with verl's keys
``reward_model.overlong_buffer.{enable, len, penalty_factor, log}``.

A response of L tokens (up to and including EOS) gets ``min(-(L - expected_len) / len * penalty_factor, 0)`` added
to its score, where ``expected_len = max_response_length - len``: nothing up to ``expected_len`` tokens, then a
linear ramp that reaches ``-penalty_factor`` at ``max_response_length``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch


@dataclass(frozen=True)
class OverlongBuffer:
    """The last ``buffer_len`` tokens before ``max_resp_len`` where the penalty ramps from 0 to ``-penalty_factor``.

    ``log``: the reward manager reports each sample's penalty (extra ``overlong_reward``) and whether it was
    penalised (extra ``overlong``), verl's extra keys.
    """

    buffer_len: int
    penalty_factor: float
    max_resp_len: int
    log: bool = False

    def __post_init__(self):
        if not 0 < self.buffer_len < self.max_resp_len:
            raise ValueError(f"reward_model.overlong_buffer.len={self.buffer_len} must be > 0 and < "
                             f"data.max_response_length={self.max_resp_len}")
        if self.penalty_factor < 0:
            raise ValueError(f"reward_model.overlong_buffer.penalty_factor={self.penalty_factor} must be >= 0 "
                             f"(a negative factor would reward long responses)")

    @classmethod
    def from_config(cls, section: Optional[Mapping], max_resp_len: Optional[int]) -> Optional["OverlongBuffer"]:
        """The buffer from ``reward_model.overlong_buffer`` (a dict or DictConfig); None when absent or not enabled."""
        if section is None or not section.get("enable", False):
            return None
        if max_resp_len is None:
            raise ValueError("reward_model.overlong_buffer.enable=True needs data.max_response_length")
        return cls(buffer_len=_number(section, "len", int), penalty_factor=_number(section, "penalty_factor", float),
                   max_resp_len=int(max_resp_len), log=bool(section.get("log", False)))

    def penalty(self, lengths: torch.Tensor) -> torch.Tensor:
        """Penalties [B] float32 (<= 0) for response lengths [B] (valid tokens, EOS included)."""
        expected_len = self.max_resp_len - self.buffer_len
        exceed = lengths.float() - expected_len
        return torch.clamp(-exceed / self.buffer_len * self.penalty_factor, max=0.0)



def _number(section: Mapping, key: str, kind: type):
    """``section[key]`` as ``kind`` (int or float); ValueError naming the key for anything else (1.5 is no int)."""
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"reward_model.overlong_buffer.{key}={value!r} must be {what} (overlong_buffer.enable=True)")
    return kind(value)
