"""The identical work both trainers get in the throughput benchmark: model, prompts, reward.

* Model: a tiny Qwen2 from ``verl.utils.tiny_model`` with a word-level ChatML tokenizer trained on a synthetic
  corpus. Its EOS is an extra special token ``<|bench_eos|>`` whose id lies past the model's vocabulary, so the
  model can never emit it: every response is exactly ``response_length`` tokens on both sides (fixed work, no
  dependence on how training moves the EOS probability).
* Prompts: ChatML text with the same number of words each; every word is one token, so every prompt has the same
  token length (asserted), and left padding is identical for both trainers.
* Reward: ``toy_score`` = the fraction of response words that start with a vowel (cheap, string-only, learnable).

Imported by the driver (project venv) and by the TRL runner (.venv-trl); needs only torch, transformers and
``verl.utils.tiny_model`` (plus pandas/pyarrow for the parquet file of our trainer).
"""
from __future__ import annotations

import json
import os
import random
from typing import Sequence

BENCH_EOS = "<|bench_eos|>"
DATA_SOURCE = "bench_toy"
VOWELS = frozenset("aeiou")


def synthetic_words(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct lowercase pseudo-words (consonant-vowel syllables), the same for the same seed."""
    rng = random.Random(seed)
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        syllables = rng.randint(1, 3)
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
        if rng.random() < 0.5:
            word = rng.choice(vowels) + word  # about half start with a vowel, so the reward is not constant
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def toy_score(text: str) -> float:
    """Fraction of whitespace-separated words in ``text`` that start with a vowel (0.0 for no words)."""
    words = text.split()
    if not words:
        return 0.0
    return sum(w[0].lower() in VOWELS for w in words) / len(words)


def compute_score(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> float:
    """verl's ``custom_reward_function`` signature around ``toy_score``."""
    return toy_score(solution_str)


def trl_reward(completions: Sequence[str], **kwargs) -> list[float]:
    """TRL's reward-function signature around ``toy_score``."""
    return [toy_score(c) for c in completions]


def render_prompt(words: Sequence[str]) -> str:
    """One ChatML user turn plus the assistant generation prompt (the tokenizer's chat template, pre-rendered)."""
    return "<|im_start|>user\n" + " ".join(words) + "<|im_end|>\n<|im_start|>assistant\n"


def build_assets(out_dir: str, layers: int = 2, hidden: int = 128, heads: int = 4, vocab_words: int = 500,
                 num_prompts: int = 512, prompt_words: int = 24, seed: int = 0) -> dict:
    """Write the shared model, tokenizer and prompt files into ``out_dir`` (idempotent for the same arguments).

    Files: ``model/`` (HF folder), ``prompts.parquet`` (verl schema, for our trainer), ``prompts.jsonl``
    ({"prompt": text}, for TRL), ``assets.json`` (the arguments, token lengths and ids).
    Returns the contents of ``assets.json``.
    """
    import torch
    from tokenizers import AddedToken

    from verl.utils.tiny_model import build_tiny_qwen2, build_tokenizer, save_tokenizer

    spec = dict(layers=layers, hidden=hidden, heads=heads, vocab_words=vocab_words, num_prompts=num_prompts,
                prompt_words=prompt_words, seed=seed)
    meta_path = os.path.join(out_dir, "assets.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("spec") == spec:
            return meta

    words = synthetic_words(vocab_words, seed=seed)
    rng = random.Random(seed + 1)
    corpus = [" ".join(rng.choices(words, k=12)) for _ in range(4 * vocab_words)]
    # every word appears often enough to be kept whole
    corpus += [" ".join(words[i:i + 10]) for i in range(0, len(words), 10)] * 4
    tokenizer = build_tokenizer(corpus, kind="word", vocab_size=vocab_words + 50)
    model = build_tiny_qwen2(tokenizer, layers=layers, hidden=hidden, heads=heads, seed=seed)
    vocab = model.config.vocab_size

    tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(BENCH_EOS, special=True, normalized=False)]})
    tokenizer.eos_token = BENCH_EOS
    eos_id = tokenizer.convert_tokens_to_ids(BENCH_EOS)
    if eos_id < vocab:
        raise RuntimeError(f"build_assets: {BENCH_EOS} got id {eos_id}, inside the model vocabulary ({vocab})")
    model.config.eos_token_id = None  # the config rejects an id past the vocabulary; generation reads the next line
    model.generation_config.eos_token_id = eos_id

    prompts = [render_prompt(rng.choices(words, k=prompt_words)) for _ in range(num_prompts)]
    lengths = {len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]}
    if len(lengths) != 1:
        raise RuntimeError(f"build_assets: prompts tokenize to different lengths {sorted(lengths)}; "
                           "every word must be a single token")

    model_dir = os.path.join(out_dir, "model")
    os.makedirs(model_dir, exist_ok=True)
    save_tokenizer(tokenizer, model_dir)
    model.save_pretrained(model_dir)

    import pandas as pd

    rows = [{"data_source": DATA_SOURCE, "prompt": p, "ability": "toy",
             "reward_model": {"style": "rule", "ground_truth": "vowel"}, "extra_info": {"index": i}}
            for i, p in enumerate(prompts)]
    pd.DataFrame(rows).to_parquet(os.path.join(out_dir, "prompts.parquet"))
    with open(os.path.join(out_dir, "prompts.jsonl"), "w") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")

    meta = {"spec": spec, "prompt_tokens": lengths.pop(), "model_vocab": vocab, "eos_token_id": eos_id,
            "pad_token_id": tokenizer.pad_token_id,
            "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
    return meta
