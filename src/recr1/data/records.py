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

from recr1.data.prompts import build_prompt, history_text

ABILITY = "product_search"

EXTRA_INFO_FIELDS = [
    ("split", pa.string()),
    ("index", pa.int64()),
    ("qid", pa.string()),
    ("request", pa.string()),
    ("category", pa.string()),
]


def row_schema(extra_info_fields: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """verl's row schema (data_source, prompt, ability, reward_model, extra_info, request) with these extra_info
    fields."""
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("ability", pa.string()),
            (
                "reward_model",
                pa.struct([("style", pa.string()), ("ground_truth", pa.struct([("target", pa.list_(pa.string()))]))]),
            ),
            ("extra_info", pa.struct(extra_info_fields)),
            ("request", pa.string()),
        ]
    )


ROW_SCHEMA = row_schema(EXTRA_INFO_FIELDS)


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


# Sequential recommendation rows (Amazon Reviews 2023): the same contract, with the user's history in extra_info.
SEQREC_ABILITY = "sequential_recommendation"
SEQREC_ROW_SCHEMA = row_schema(EXTRA_INFO_FIELDS + [
    ("user_id", pa.string()),
    ("history", pa.list_(pa.string())),
    ("history_titles", pa.list_(pa.string())),
])


def make_seqrec_row(*, data_source: str, history: list[str], history_titles: list[str], target: str, split: str,
                    index: int, user_id: str, category: str | None, template: str = "seqrec") -> dict:
    """One next-item row: the prompt shows ``history_titles`` (oldest first), the target is one parent_asin.

    ``request`` (top level and in extra_info) is the history as the prompt shows it; ``qid`` is
    ``<user_id>:<split>`` so that a user's val and test rows stay apart.
    """
    request = history_text(history_titles)
    return {
        "data_source": data_source,
        "prompt": build_prompt(request, template),
        "ability": SEQREC_ABILITY,
        "reward_model": {"style": "rule", "ground_truth": {"target": [target]}},
        "extra_info": {"split": split, "index": index, "qid": f"{user_id}:{split}", "request": request,
                       "category": category, "user_id": user_id, "history": list(history),
                       "history_titles": list(history_titles)},
        "request": request,
    }


def write_seqrec_rows(rows: list[dict], path: str | os.PathLike) -> None:
    """Write next-item rows with SEQREC_ROW_SCHEMA (an empty list gives an empty file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SEQREC_ROW_SCHEMA), path)
