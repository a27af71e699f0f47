"""Where every demo artefact lives under the output folder (default outputs/demo)."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPaths:
    """All demo paths, derived from the output folder ``root``."""

    root: str

    def _p(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def raw(self) -> str:
        return self._p("raw")

    @property
    def data(self) -> str:
        return self._p("data")

    @property
    def prepared(self) -> str:
        """The standard prepared files (recr1.data.amazon_c4's output, sparse template)."""
        return self._p("data", "prepared")

    def split(self, name: str) -> str:
        """Prepared parquet of ``name`` (train, val, test)."""
        return self._p("data", f"{name}.parquet")

    @property
    def rl_val(self) -> str:
        return self._p("data", "rl_val.parquet")

    @property
    def test_eval(self) -> str:
        return self._p("data", "test_eval.parquet")

    @property
    def corpus(self) -> str:
        return self._p("corpus")

    @property
    def index(self) -> str:
        return self._p("index", "lucene")

    @property
    def init_model(self) -> str:
        return self._p("model", "init")

    @property
    def tokenizer_texts(self) -> str:
        return self._p("model", "tokenizer_texts.txt")

    def sft_data(self, name: str) -> str:
        return self._p("sft", "data", f"{name}.parquet")

    @property
    def sft_ckpt(self) -> str:
        return self._p("sft", "ckpt")

    def sft_model(self, steps: int) -> str:
        return self._p("sft", "ckpt", f"global_step_{steps}", "huggingface")

    @property
    def rl_ckpt(self) -> str:
        return self._p("rl", "ckpt")

    def rl_model(self, steps: int) -> str:
        return self._p("rl", "ckpt", f"global_step_{steps}", "actor", "huggingface")

    def metrics_jsonl(self, stage: str) -> str:
        """metrics.jsonl written by the trainer of ``stage`` (sft or rl)."""
        return self._p(stage, "ckpt", "metrics.jsonl")

    def eval_dir(self, method: str) -> str:
        return self._p("eval", method)

    def log(self, stage: str) -> str:
        return self._p("logs", f"{stage}.log")

    def stamp(self, stage: str) -> str:
        return self._p(".stamps", f"{stage}.json")

    @property
    def results_json(self) -> str:
        return self._p("results.json")

    @property
    def results_md(self) -> str:
        return self._p("results.md")

    @property
    def curves_png(self) -> str:
        return self._p("curves.png")
