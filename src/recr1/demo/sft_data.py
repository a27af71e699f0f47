"""SFT pairs for the warm start: the prepared RL prompts with a naive, target-free answer as the response.

    python -m recr1.demo.sft_data --data data/train.parquet --out data/sft/train.parquet [--words 12] \\
        [--template keywords] [--swapped-copies 4 --corpus data/corpus]

Each pair is the prompt of a prepared row (or the demo template applied to its request) and the naive answer
of :mod:`recr1.demo.naive_query`. ``--swapped-copies N`` adds N word-swapped copies of every request
(:mod:`recr1.demo.augment`). ``reward_model`` is dropped: the SFT target never knows the ground-truth item.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable

import pandas as pd

from recr1.demo.augment import product_vocabulary, swap_product_words
from recr1.demo.naive_query import NAIVE_QUERY_WORDS, naive_response
from recr1.demo.templates import prompt_builder

PromptFn = Callable[[str], list]


def build_sft_frame(rows: pd.DataFrame, n_words: int = NAIVE_QUERY_WORDS, where: str = "data",
                    prompt_fn: PromptFn | None = None) -> pd.DataFrame:
    """Prompt/response pairs for the prepared rows ``rows`` (columns prompt, request, data_source).

    ``prompt_fn`` (request -> chat messages) rebuilds each prompt from its request; None keeps ``prompt``.
    Raises ValueError naming ``where`` and the row when a request is missing or has no content word.
    """
    for column in ("prompt", "request", "data_source"):
        if column not in rows.columns:
            raise ValueError(f"{where}: missing column {column!r}; found {list(rows.columns)}")
    responses = []
    for i, request in enumerate(rows["request"].tolist()):
        if not isinstance(request, str) or not request.strip():
            raise ValueError(f"{where}, row {i}: empty request")
        response = naive_response(request, n_words)
        if '"query": ""' in response:
            raise ValueError(f"{where}, row {i}: the request has no content word: {request!r:.120}")
        responses.append(response)
    prompts = [prompt_fn(r) for r in rows["request"]] if prompt_fn else rows["prompt"].tolist()
    return pd.DataFrame({"prompt": prompts, "response": responses, "data_source": rows["data_source"].tolist(),
                         "request": rows["request"].tolist()})


def swapped_sft_frame(rows: pd.DataFrame, vocabulary: list[str], copies: int, seed: int,
                      n_words: int = NAIVE_QUERY_WORDS, prompt_fn: PromptFn | None = None,
                      where: str = "data") -> pd.DataFrame:
    """``copies`` word-swapped versions of every request of ``rows``, as SFT pairs (prompt rebuilt from the
    swapped request, so ``prompt_fn`` is required)."""
    if prompt_fn is None:
        raise ValueError("swapped copies need a prompt template that is built from the request (e.g. keywords)")
    rng = random.Random(seed)
    swapped = pd.DataFrame({
        "prompt": [None] * (len(rows) * copies),
        "request": [swap_product_words(r, vocabulary, rng) for _ in range(copies) for r in rows["request"]],
        "data_source": [f"{s}_swapped" for _ in range(copies) for s in rows["data_source"]],
    })
    return build_sft_frame(swapped, n_words, where=f"{where} (swapped)", prompt_fn=prompt_fn)


def sft_pairs(rows: pd.DataFrame, n_words: int = NAIVE_QUERY_WORDS, where: str = "data", template: str | None = None,
              swapped_copies: int = 0, corpus: str | None = None, seed: int = 0) -> pd.DataFrame:
    """SFT pairs for the prepared rows ``rows``: one per row (prompt rebuilt with ``template`` when given) and
    ``swapped_copies`` word-swapped copies of each (product vocabulary from the catalog ``corpus``)."""
    prompt_fn = prompt_builder(template) if template else None
    frames = [build_sft_frame(rows, n_words, where=where, prompt_fn=prompt_fn)]
    if swapped_copies > 0:
        if not corpus:
            raise ValueError("swapped copies need the catalog corpus (--corpus) for the product vocabulary")
        frames.append(swapped_sft_frame(rows, product_vocabulary(corpus), swapped_copies, seed, n_words,
                                        prompt_fn, where=where))
    return pd.concat(frames, ignore_index=True)


def build_sft_file(data: str, out: str, n_words: int = NAIVE_QUERY_WORDS, limit: int | None = None,
                   template: str | None = None, swapped_copies: int = 0, corpus: str | None = None,
                   seed: int = 0) -> int:
    """Write the SFT parquet for the prepared file ``data`` to ``out``; returns the number of pairs."""
    if not os.path.isfile(data):
        raise FileNotFoundError(f"prepared data file not found: {data}")
    rows = pd.read_parquet(data)
    if limit is not None:
        rows = rows.iloc[:limit]
    frame = sft_pairs(rows, n_words, data, template, swapped_copies, corpus, seed)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    frame.to_parquet(out, index=False)
    return len(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.demo.sft_data", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared RL parquet (train.parquet)")
    parser.add_argument("--out", required=True, help="output parquet with prompt/response columns")
    parser.add_argument("--words", type=int, default=NAIVE_QUERY_WORDS, help="content words in the naive query")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--template", default=None, help="rebuild prompts with this template (keywords, compact, sparse)")
    parser.add_argument("--swapped-copies", type=int, default=0, help="word-swapped copies of each request")
    parser.add_argument("--corpus", default=None, help="catalog corpus folder (product vocabulary for swaps)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        n = build_sft_file(args.data, args.out, args.words, args.limit, args.template, args.swapped_copies,
                           args.corpus, args.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} SFT pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
