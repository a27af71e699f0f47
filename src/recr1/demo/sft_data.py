"""SFT pairs for the warm start: the prepared RL prompts with a naive, target-free answer as the response.

    python -m recr1.demo.sft_data --data data/train.parquet --out data/sft/train.parquet [--words 12]

The output keeps the RL file's ``prompt`` (chat messages) so the SFT and RL prompts are identical, and
adds ``response`` (see :mod:`recr1.demo.naive_query`). ``reward_model`` is dropped: the SFT target must
not know the ground-truth item.
"""
from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from recr1.demo.naive_query import NAIVE_QUERY_WORDS, naive_response

SFT_COLUMNS = ("prompt", "response", "data_source", "request")


def build_sft_frame(rows: pd.DataFrame, n_words: int = NAIVE_QUERY_WORDS, where: str = "data") -> pd.DataFrame:
    """Prompt/response pairs for the prepared rows ``rows`` (columns prompt, request, data_source).

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
    return pd.DataFrame({"prompt": rows["prompt"].tolist(), "response": responses,
                         "data_source": rows["data_source"].tolist(), "request": rows["request"].tolist()})


def build_sft_file(data: str, out: str, n_words: int = NAIVE_QUERY_WORDS, limit: int | None = None) -> int:
    """Write the SFT parquet for the prepared file ``data`` to ``out``; returns the number of pairs."""
    if not os.path.isfile(data):
        raise FileNotFoundError(f"prepared data file not found: {data}")
    rows = pd.read_parquet(data)
    if limit is not None:
        rows = rows.iloc[:limit]
    frame = build_sft_frame(rows, n_words, where=data)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    frame.to_parquet(out, index=False)
    return len(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.demo.sft_data", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared RL parquet (train.parquet)")
    parser.add_argument("--out", required=True, help="output parquet with prompt/response columns")
    parser.add_argument("--words", type=int, default=NAIVE_QUERY_WORDS, help="content words in the naive query")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    args = parser.parse_args(argv)
    try:
        n = build_sft_file(args.data, args.out, args.words, args.limit)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} SFT pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
