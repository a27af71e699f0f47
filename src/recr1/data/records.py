"""The prepared-row contract (verl's parquet convention) and its writer.

One row per request::

    data_source   "amazon_c4_train" | "amazon_c4_val" | "amazon_c4_<Domain>_test" | "esci_..."
    prompt        [{"role": "user", "content": "... the request ..."}]
    ability       "product_search"
    reward_model  {"style": "rule", "ground_truth": {"target": [item ids]}}
    extra_info    {"split", "index", "qid", "request", "category"}
    request       the raw request text (also in extra_info, kept top-level for convenience)
"""
from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from recr1.data.prompts import build_prompt

ABILITY = "product_search"

ROW_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        (
            "reward_model",
            pa.struct([("style", pa.string()), ("ground_truth", pa.struct([("target", pa.list_(pa.string()))]))]),
        ),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("qid", pa.string()),
                    ("request", pa.string()),
                    ("category", pa.string()),
                ]
            ),
        ),
        ("request", pa.string()),
    ]
)


def make_row(
    *,
    data_source: str,
    request: str,
    target: list[str],
    split: str,
    index: int,
    qid: str,
    category: str | None,
    template: str = "sparse",
) -> dict:
    """One prepared row following the contract above (``target`` is the list of relevant item ids)."""
    return {
        "data_source": data_source,
        "prompt": build_prompt(request, template),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": {"target": list(target)}},
        "extra_info": {"split": split, "index": index, "qid": str(qid), "request": request, "category": category},
        "request": request,
    }


def write_rows(rows: list[dict], path: str | os.PathLike) -> None:
    """Write prepared rows to a parquet file with the fixed ROW_SCHEMA (an empty list gives an empty file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
    pq.write_table(table, path)
