"""The Rec-R1 reward: format check, one batched retrieval, NDCG of the target products.

A response is well formed when it reads ``<think>…</think><answer>{"query": "…"}</answer>``
(each tag once, in that order; when the prompt pre-fills ``<think>``, a response that starts after
it is accepted too) and the last ``<answer>`` holds a JSON object whose ``query`` is a string (or
a number). Scores, with Rec-R1's defaults (all configurable):

    bad format                          -> format_penalty (-2.0)
    good format, a target in the top k  -> format_bonus (0.1) + NDCG@k
    good format, no target in the top k -> 0.0          (also for an empty query)

k is ``k_train`` (1000) for training data sources and ``k_eval`` (100) for val/test ones; Rec-R1's
sequential-recommendation sources (``amazon_review_*``) use 5000 and 50 (``TASK_K``).

``compute_score_batch`` is what verl's batch reward manager calls: it parses every response,
searches each distinct query once, and scores every sample against its own targets.
``compute_score`` is the per-sample form for reward managers that call one sample at a time.
The retriever comes from keyword arguments (``retriever``, ``index`` and searcher settings, passed
by the trainer from ``custom_reward_function.reward_kwargs``), else from the environment variables
``RECR1_RETRIEVER`` (bm25|dense|remote) and ``RECR1_INDEX`` (``RECR1_URL`` for a retrieval server,
``recr1.retrieval.serve``); it is loaded once per process. ``preflight`` (called by verl's trainer before
any worker starts) checks that the index exists (or the server answers its health check), holds documents
and answers a query.
"""
from __future__ import annotations

import fnmatch
import inspect
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recr1.metrics import first_ranks, metrics_from_ranks, ndcg_from_ranks
from recr1.query_stats import query_statistics
from recr1.retrieval.query_cache import CachedSearcher
from recr1.retrieval.query_text import clean_query
from recr1.retrieval.remote_searcher import RemoteSearchError
from recr1.retrieval.searcher import Searcher, get_searcher

FORMAT_BONUS = 0.1
FORMAT_PENALTY = -2.0
MISS_SCORE = 0.0
K_TRAIN = 1000
K_EVAL = 100
# Rec-R1's cut-offs per task where they differ from the product-search ones: data_source pattern -> (k_train, k_eval).
# Sequential recommendation (its reward amazon_review.py) ranks the whole category: 5000 for training, 50 for eval.
TASK_K = {"amazon_review_*": (5000, 50)}

# Reasons a sample gets the score it gets; format failures first, in the order they are checked.
FORMAT_REASONS = ("not_text", "no_answer", "bad_json", "no_query", "query_not_text", "bad_tags")
SCORED_REASONS = ("hit", "miss", "empty_query")

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_EVAL_SOURCE = re.compile(r"(?:^|[^a-z])(val|valid|validation|test|eval|dev)(?:[^a-z]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAnswer:
    """What a response says: its query (None when there is none) and whether its format is good."""

    query: str | None
    format_ok: bool
    reason: str  # "ok" or one of FORMAT_REASONS


def _tags_in_order(text: str, accept_prefilled_think: bool) -> bool:
    counts = {tag: text.count(tag) for tag in _TAGS}
    positions = {tag: text.find(tag) for tag in _TAGS}
    if accept_prefilled_think and counts["<think>"] == 0 and counts["</think>"] == 1:
        counts["<think>"], positions["<think>"] = 1, -1  # the prompt ended with "<think>"
    if any(count != 1 for count in counts.values()):
        return False
    order = [positions[tag] for tag in _TAGS]
    return order == sorted(order)


def _query_value(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def parse_answer(solution_str: Any, accept_prefilled_think: bool = True) -> ParsedAnswer:
    """Read the query from the last ``<answer>…</answer>`` of a response and check its format.

    Args:
        solution_str: the response text alone (what verl's reward managers pass).
        accept_prefilled_think: a response with no ``<think>`` but one ``</think>`` counts as if it
            started with ``<think>`` (for prompts that end with it).

    Returns:
        ParsedAnswer. ``query`` is set whenever the last answer holds JSON with a usable ``query``,
        even if the tags around it are malformed (the evaluation scores it anyway).
    """
    if not isinstance(solution_str, str):
        return ParsedAnswer(None, False, "not_text")
    answers = _ANSWER.findall(solution_str)
    if not answers:
        return ParsedAnswer(None, False, "no_answer")
    try:
        data = json.loads(answers[-1].strip())
    except (json.JSONDecodeError, RecursionError):
        return ParsedAnswer(None, False, "bad_json")
    if not isinstance(data, dict) or "query" not in data:
        return ParsedAnswer(None, False, "no_query")
    query = _query_value(data["query"])
    if query is None:
        return ParsedAnswer(None, False, "query_not_text")
    if not _tags_in_order(solution_str, accept_prefilled_think):
        return ParsedAnswer(query, False, "bad_tags")
    return ParsedAnswer(query, True, "ok")


def targets_from_ground_truth(ground_truth: Any, where: str = "ground_truth") -> list[str]:
    """The target item ids of a sample, as strings.

    Accepts verl's ``{"target": [ids]}`` (or ``"targets"``), a bare list/array of ids, or one id.

    Raises:
        ValueError: no target ids (a data problem, not an LLM one); the message names ``where``.
    """
    value = ground_truth
    if isinstance(ground_truth, dict):
        key = "target" if "target" in ground_truth else "targets" if "targets" in ground_truth else None
        if key is None:
            raise ValueError(f"{where}: no 'target' key in {ground_truth!r:.200}")
        value = ground_truth[key]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        targets = [str(value)]
    elif value is not None and hasattr(value, "__iter__") and not isinstance(value, (dict, bytes)):
        targets = [str(t) for t in value if t is not None and str(t) != ""]
    else:
        targets = []
    if not targets:
        raise ValueError(f"{where}: no target ids in {ground_truth!r:.200}")
    return targets


def is_eval_source(data_source: str, extra_info: dict | None = None) -> bool:
    """True for validation/test data (``amazon_c4_val``, ``amazon_c4_Baby_test``, ``split: test``)."""
    split = (extra_info or {}).get("split") if isinstance(extra_info, dict) else None
    if isinstance(split, str) and split:
        return split.lower() != "train"
    return bool(_EVAL_SOURCE.search(str(data_source)))


def default_ks(data_source: str) -> tuple[int, int]:
    """``(k_train, k_eval)`` for ``data_source``: the first TASK_K pattern it matches, else (K_TRAIN, K_EVAL)."""
    for pattern, ks in TASK_K.items():
        if fnmatch.fnmatchcase(str(data_source), pattern):
            return ks
    return K_TRAIN, K_EVAL


def resolve_searcher(retriever: str | None = None, index: str | None = None, **settings) -> Searcher:
    """The process-wide searcher: arguments first, then ``$RECR1_RETRIEVER`` / ``$RECR1_INDEX`` (``$RECR1_URL``
    for ``retriever="remote"``, a client of a ``recr1.retrieval.serve`` server, which takes no index)."""
    kind = retriever or os.environ.get("RECR1_RETRIEVER") or "bm25"
    if kind == "remote":
        url = settings.pop("url", None) or os.environ.get("RECR1_URL")
        if not url:
            raise ValueError("the reward with retriever remote needs the retrieval server's address: pass "
                             "url=http://host:port (reward_kwargs) or set RECR1_URL")
        return get_searcher(kind, index, url=url, **settings)
    index = index or os.environ.get("RECR1_INDEX")
    if not index:
        raise ValueError("the reward needs a retrieval index: pass index=... (reward_kwargs) or set RECR1_INDEX")
    return get_searcher(kind, index, **settings)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[dict | None] | None = None,
    *,
    retriever: str | None = None,
    index: str | None = None,
    searcher: Searcher | None = None,
    k_train: int | None = None,
    k_eval: int | None = None,
    format_bonus: float = FORMAT_BONUS,
    format_penalty: float = FORMAT_PENALTY,
    miss_score: float = MISS_SCORE,
    accept_prefilled_think: bool = True,
    **searcher_settings,
) -> list[dict]:
    """Score a batch of n responses with one retrieval call per distinct k.

    Args:
        data_sources, solution_strs, ground_truths, extra_infos: n entries each (extra_infos may be None).
        retriever, index, searcher_settings: which searcher to use (see :func:`resolve_searcher`);
            or pass a ready ``searcher``.
        k_train, k_eval: NDCG cut-off for training and for val/test sources; None (the default): each data
            source's own (:func:`default_ks`: 1000/100, Rec-R1's 5000/50 for ``amazon_review_*``).
        format_bonus, format_penalty, miss_score: reward shaping (Rec-R1: 0.1, -2.0, 0.0).
        accept_prefilled_think: see :func:`parse_answer`.

    Returns:
        n dicts with ``score`` (float), ``ndcg`` (float), ``rank`` (1-based rank of the best target
        within the top k, or None), ``format_ok`` (bool), ``reason`` (FORMAT_REASONS or
        "hit"/"miss"/"empty_query"), ``query`` (the parsed query or None) and ``k``; the retrieval metrics
        of ``recr1.eval`` (:func:`recr1.metrics.retrieval_metrics` at ``k_eval``: ``ndcg@10``,
        ``ndcg@<k_eval>``, ``recall@<k_eval>``, ``mrr``; the query is scored even when the tags around it
        are malformed, 0 without a query), ``top3_ids`` (the first three retrieved ids, for the
        generation tables; see :func:`describe_generations`), the query statistics of
        :func:`recr1.query_stats.query_statistics` (``query_terms``, ``query_op_and``, ...); with a
        query-cached searcher also ``query_cache_hit`` (whether the sample's hits came from results of
        earlier calls, None when nothing was searched), which verl logs as ``reward/query_cache_hit/mean``.
        A query is searched to depth max(k, k_eval).
    """
    n = len(solution_strs)
    if len(data_sources) != n or len(ground_truths) != n or (extra_infos is not None and len(extra_infos) != n):
        raise ValueError(
            f"batch lengths differ: {len(data_sources)} data_sources, {n} solution_strs, "
            f"{len(ground_truths)} ground_truths, {None if extra_infos is None else len(extra_infos)} extra_infos"
        )
    extra_infos = extra_infos if extra_infos is not None else [None] * n
    targets = [targets_from_ground_truth(gt, f"sample {i} ground_truth") for i, gt in enumerate(ground_truths)]
    defaults = [default_ks(ds) for ds in data_sources]
    ks = [(k_eval or d_eval) if is_eval_source(ds, ei) else (k_train or d_train)
          for ds, ei, (d_train, d_eval) in zip(data_sources, extra_infos, defaults)]
    k_eval = k_eval or max((d_eval for _, d_eval in defaults), default=K_EVAL)
    parsed = [parse_answer(s, accept_prefilled_think) for s in solution_strs]
    # Every query a response gives is searched, also under bad tags: the score punishes the format, while the
    # retrieval metrics (ndcg@10, ndcg@<k_eval>, recall@<k_eval>, mrr) measure the query, as recr1.eval does.
    queries = [clean_query(p.query, max_terms=None) if p.query is not None else "" for p in parsed]

    # One search per distinct (query, k): the largest k any sample needs for that query (at least k_eval).
    k_needed: dict[str, int] = {}
    for query, k in zip(queries, ks):
        if query:
            k_needed[query] = max(k, k_eval, k_needed.get(query, 0))
    ranked: dict[str, list[str]] = {}
    from_cache: dict[str, bool] | None = None
    if k_needed:
        searcher = searcher or resolve_searcher(retriever, index, **searcher_settings)
        if isinstance(searcher, CachedSearcher):
            from_cache = {query: searcher.contains(query, k) for query, k in k_needed.items()}
        for k in sorted(set(k_needed.values())):
            batch = [q for q, kq in k_needed.items() if kq == k]
            for query, hits in zip(batch, searcher.batch_search(batch, k)):
                ranked[query] = [doc_id for doc_id, _ in hits]

    max_terms = getattr(searcher, "max_query_terms", None) if k_needed else None
    results = []
    for p, query, k, sample_targets, response in zip(parsed, queries, ks, targets, solution_strs):
        result = {"score": float(format_penalty), "ndcg": 0.0, "rank": None, "format_ok": p.format_ok,
                  "reason": p.reason, "query": p.query, "k": k}  # fmt: skip
        retrieved = ranked.get(query, []) if query else []
        unique_targets = list(dict.fromkeys(sample_targets))
        # One pass over the ranking serves the reward's NDCG@k and the retrieval metrics at k_eval.
        ranks = first_ranks(retrieved, unique_targets, max(k, k_eval))
        result.update(metrics_from_ranks(ranks, len(unique_targets), k_eval))
        result["top3_ids"] = retrieved[:3]
        result.update(query_statistics(p.query, response, max_terms))
        if p.format_ok:
            if not query:
                result.update(score=float(miss_score), reason="empty_query")
            else:
                in_k = {doc: rank for doc, rank in ranks.items() if rank <= k}
                ndcg = ndcg_from_ranks(in_k, len(unique_targets), k)  # = ndcg_at_k(retrieved[:k], targets, k)
                hit = ndcg > 0
                result.update(
                    score=float(format_bonus + ndcg) if hit else float(miss_score),
                    ndcg=ndcg,
                    rank=min(in_k.values()) if in_k else None,
                    reason="hit" if hit else "miss",
                )
        if from_cache is not None:
            result["query_cache_hit"] = from_cache.get(query) if query else None
        results.append(result)
    return results


# compute_score_batch's keyword arguments that shape the score, not the searcher.
_SCORING_KWARGS = frozenset(
    name for name, p in inspect.signature(compute_score_batch).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in ("retriever", "index", "searcher")
)
PREFLIGHT_QUERY = "preflight check query"


def preflight(*, retriever: str | None = None, index: str | None = None, searcher: Searcher | None = None,
              **kwargs) -> None:
    """Fail now, before training starts, if the reward cannot retrieve: the index must exist, hold documents and
    answer a query. verl's trainer calls this once in the driver with ``custom_reward_function.reward_kwargs``
    (the same keyword arguments :func:`compute_score_batch` gets), and the searcher it loads stays cached for the
    reward. Without it a missing index fails only at the first reward, and an empty one scores every answer 0.

    Raises:
        ValueError: no index configured, the index holds no documents, or a searcher setting is wrong.
        FileNotFoundError: the index folder is missing or not an index of that kind.
        RemoteSearchError: with ``retriever="remote"``, the server at ``url`` does not answer (refused, timed out,
            an error status) its health check or a query; the message names the URL.
    """
    if searcher is None:
        kind = retriever or os.environ.get("RECR1_RETRIEVER") or "bm25"
        settings = {k: v for k, v in kwargs.items() if k not in _SCORING_KWARGS}
        if kind == "remote":
            where = (f"the retrieval server {settings.get('url') or os.environ.get('RECR1_URL')!r} (reward_kwargs "
                     f"url, else $RECR1_URL)")
        else:
            index = index or os.environ.get("RECR1_INDEX")
            where = f"the {kind} index {index!r} (reward_kwargs index, else $RECR1_INDEX)"
        try:
            searcher = resolve_searcher(kind, index, **settings)
        except RemoteSearchError as e:
            raise RemoteSearchError(f"Rec-R1 reward: cannot use {where}: {e}. Start it with python -m "
                                    f"recr1.retrieval.serve --index DIR --retriever bm25 --port P") from e
        except FileNotFoundError as e:
            build = "recr1.retrieval.build_lucene" if kind == "bm25" else "recr1.retrieval.build_dense"
            raise FileNotFoundError(f"Rec-R1 reward: cannot open {where}: {e}. Build it with python -m {build}, "
                                    f"or point index at an existing one") from e
        except TypeError as e:
            if "unexpected keyword argument" not in str(e):
                raise
            raise ValueError(f"Rec-R1 reward: a reward_kwargs entry is neither a reward setting nor a {kind} "
                             f"searcher setting: {e}") from e
    else:
        where = f"the given {searcher.kind} searcher"
    if searcher.num_docs <= 0:
        raise ValueError(f"Rec-R1 reward: {where} holds no documents, so every query would miss and every "
                         f"well-formed answer would score {MISS_SCORE}; rebuild it from the corpus")
    hits = searcher.batch_search([PREFLIGHT_QUERY], 1)
    if len(hits) != 1:
        raise RuntimeError(f"Rec-R1 reward: {where} answered {len(hits)} result lists for one query")


TITLE_CHARS = 80


def describe_generations(rows: Sequence[dict], *, retriever: str | None = None, index: str | None = None,
                         searcher: Searcher | None = None, **kwargs) -> list[dict]:
    """verl's generation-table hook (see verl.trainer.ppo.generation_logs): for the few samples a person will read,
    ``query`` (what the reward searched), ``target_rank`` (the best target's rank within k, or None) and
    ``top3_titles`` (``"<id>: <first 80 characters of its catalog text>"`` of the first three hits; a corpus row's
    text starts with the product title; just the id where the index keeps no text, e.g. dense).

    Args:
        rows: dicts holding this reward's extras (``query``, ``rank``, ``top3_ids``), as verl passes them.
        retriever, index, searcher, kwargs: as for :func:`compute_score_batch` (``custom_reward_function.
            reward_kwargs``); the searcher is the process-wide one the reward uses.
    """
    ids = [list(row.get("top3_ids") or []) for row in rows]
    wanted = list(dict.fromkeys(doc_id for row_ids in ids for doc_id in row_ids))
    texts: dict = {}
    if wanted:
        if searcher is None:
            settings = {k: v for k, v in kwargs.items() if k not in _SCORING_KWARGS}
            searcher = resolve_searcher(retriever, index, **settings)
        texts = dict(zip(wanted, searcher.doc_texts(wanted)))

    def title(doc_id) -> str:
        text = texts.get(doc_id)
        return str(doc_id) if not text else f"{doc_id}: {' '.join(text.split())[:TITLE_CHARS]}"

    return [{"query": row.get("query"), "target_rank": row.get("rank"), "top3_titles": [title(d) for d in row_ids]}
            for row, row_ids in zip(rows, ids)]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs,
) -> dict:
    """verl's per-sample reward function: one sample through :func:`compute_score_batch`."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **kwargs)[0]
