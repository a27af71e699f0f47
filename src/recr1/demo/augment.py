"""Word-swap augmentation of SFT requests: product words replaced by random product words of the catalog.

A tiny policy fine-tuned on naive answers learns a shortcut: the product type can be guessed from the other
words of a request ("plumbing" -> a wrench), so it never learns to copy it, and its guesses fail on the held-out
categories. In a swapped copy of a request, every product word (brand, type, material, color, size, feature:
the words of the catalog's titles) is replaced, consistently within the request, by a random one, so guessing
stops working and copying is the only way to answer. The naive answer is recomputed from the swapped request;
no test request and no target item is involved.
"""
from __future__ import annotations

import glob
import json
import os
import random
import re

_LETTERS = re.compile(r"[A-Za-z]+")
MIN_WORD_LENGTH = 3


def product_vocabulary(corpus_dir: str) -> list[str]:
    """Lower-cased words of every item title (the text before the first '. ') in a corpus folder, sorted."""
    words: set[str] = set()
    for shard in sorted(glob.glob(os.path.join(corpus_dir, "*.jsonl"))):
        with open(shard, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    title = json.loads(line)["contents"].split(". ")[0]
                    words.update(w.lower() for w in _LETTERS.findall(title) if len(w) >= MIN_WORD_LENGTH)
    if not words:
        raise ValueError(f"no item titles found in {corpus_dir}")
    return sorted(words)


def swap_product_words(text: str, vocabulary: list[str], rng: random.Random) -> str:
    """``text`` with each distinct vocabulary word replaced by one random vocabulary word (capitalization kept)."""
    known = set(vocabulary)
    mapping: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        word = match.group(0)
        key = word.lower()
        if key not in known:
            return word
        if key not in mapping:
            mapping[key] = rng.choice(vocabulary)
        new = mapping[key]
        return new.capitalize() if word[0].isupper() else new

    return _LETTERS.sub(swap, text)
