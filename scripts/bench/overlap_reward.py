"""The reward of the trainer-level overlap benchmark (reward_overlap.py): real Rec-R1 retrieval work for any response.

A tiny random policy writes no well-formed answer, so the retrieval a trained policy would cause never happens. This
batch reward function turns each response into the answer a query-writing policy might give for its prompt's
request: one of the request's query variants (reward_throughput.query_variants), picked by a hash of the response
text, so identical responses give identical queries and a group repeats some of them. The answers are then scored by
``recr1.reward.compute_score_batch`` against the real Lucene index: the same searches, NDCG and shaping as training.

Each prompt row's ``extra_info`` holds its request's ``variants`` and the ``reward_model.ground_truth`` its target.
"""
from __future__ import annotations

import json
import zlib

from recr1.reward import compute_score_batch


def answer_for(response: str, variants: list[str]) -> str:
    """The well-formed answer whose query is the variant the response hashes to."""
    query = variants[zlib.crc32(response.encode("utf-8")) % len(variants)]
    return f"<think>the product words</think><answer>{json.dumps({'query': query})}</answer>"


def compute_score(data_sources, solution_strs, ground_truths, extra_infos, **reward_kwargs) -> list[dict]:
    """verl's batch signature: ``compute_score_batch`` on the answers the responses map to."""
    answers = [answer_for(response, list(info["variants"])) for response, info in zip(solution_strs, extra_infos)]
    results = compute_score_batch(data_sources, answers, ground_truths, extra_infos, **reward_kwargs)
    return [{"score": r["score"], "ndcg": r["ndcg"]} for r in results]
