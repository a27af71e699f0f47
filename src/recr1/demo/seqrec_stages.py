"""The seqrec demo's own stages (``python -m recr1.demo --task seqrec``): the synthetic Amazon Reviews 2023
category, its prep, its index, the SFT pairs and the evaluation with the last-title baseline. The tiny policy,
SFT and GRPO stages are the product-search demo's own (:mod:`recr1.demo.stages`).

The policy sees the content words of the last ``max_history`` titles, oldest first (the demo's keyword prompt:
a 0.5M-parameter model copies words, it cannot read the library's long template); the SFT target is the last
title's content words (the last-title baseline itself) with words dropped at random (``sft_word_keep``), so SFT
teaches the format, copying and some variety, and only RL can learn which of the history's words find the next
item.
"""
from __future__ import annotations

import glob
import os
import random
import shutil

import pandas as pd

from recr1.demo.naive_query import content_words, format_response, request_keywords
from recr1.demo.stages import StageContext, _rows, read_train_and_val, searcher_settings, write_sft_and_eval_files

BASELINE = "last_title"
SEQREC_PROMPT = "Bought, oldest first: {titles}\nWrite a search query for the next item."


def _category() -> str:
    from recr1.data.synthetic_reviews import DEFAULT_CATEGORY

    return DEFAULT_CATEGORY


def val_source() -> str:
    """The RL validation curve's data source: the transductive val split of the synthetic category."""
    from recr1.data.amazon_review import data_source

    return data_source(_category(), "val")


def seqrec_prompt(titles: list[str]) -> list[dict[str, str]]:
    """Chat messages showing the content words of ``titles`` (oldest first), ``;`` between items."""
    shown = " ; ".join(" ".join(request_keywords(t)) for t in titles)
    return [{"role": "user", "content": SEQREC_PROMPT.format(titles=shown)}]


# ---- catalog, prepare, index ---------------------------------------------------------------------


def run_catalog(ctx: StageContext) -> str:
    from recr1.data.synthetic_reviews import generate_reviews

    s = ctx.settings
    if s.users < 1:
        raise ValueError(f"the seqrec demo needs users >= 1 (--set users=N), got {s.users}")
    summary = generate_reviews(ctx.paths.raw, s.users, s.items, s.data_seed)
    return f"{summary['users']} users, {summary['reviews']} reviews over {summary['items']} items"


def valid_catalog(ctx: StageContext) -> bool:
    cat = _category()
    return all(os.path.isfile(os.path.join(ctx.paths.raw, name)) for name in (f"{cat}.jsonl", f"meta_{cat}.jsonl"))


def run_prepare(ctx: StageContext) -> str:
    from recr1.data.amazon_review import prepare

    s, p = ctx.settings, ctx.paths
    summary = prepare(p.raw, _category(), p.prepared, max_history=s.max_history, max_eval_rows=None,
                      seed=s.data_seed)
    shutil.rmtree(p.corpus, ignore_errors=True)
    shutil.move(os.path.join(p.prepared, "corpus"), p.corpus)  # where the policy stage reads the vocabulary
    for name in ("train", "val", "test"):
        frame = pd.read_parquet(os.path.join(p.prepared, f"{name}.parquet"))
        frame["prompt"] = [seqrec_prompt(list(e["history_titles"])) for e in frame["extra_info"]]
        frame.to_parquet(p.split(name), index=False)
    rows = summary["rows"]
    return (f"train {rows['train']}, val {rows['val']} + {rows['inductive_val']} inductive, test {rows['test']} + "
            f"{rows['inductive_test']} inductive (held-out users); {summary['items']} items in the corpus")


def valid_prepare(ctx: StageContext) -> bool:
    return all(os.path.isfile(ctx.paths.split(name)) for name in ("train", "val", "test")) and \
        _rows(ctx.paths.split("train")) > 0 and bool(glob.glob(os.path.join(ctx.paths.corpus, "*.jsonl")))


def _corpus_size(folder: str) -> int:
    total = 0
    for shard in glob.glob(os.path.join(folder, "*.jsonl")):
        with open(shard, "rb") as f:
            total += sum(1 for _ in f)
    return total


def run_index(ctx: StageContext) -> str:
    from recr1.retrieval.build_lucene import build_lucene_index

    p = ctx.paths
    n_indexed = build_lucene_index(p.corpus, p.index, threads=1, overwrite=True, jvm_heap="1g")
    return f"{n_indexed} items indexed with Lucene BM25"


def valid_index(ctx: StageContext) -> bool:
    docids = os.path.join(ctx.paths.index, "docids.txt")
    if not os.path.isfile(docids):
        return False
    with open(docids, "rb") as f:
        return sum(1 for _ in f) == _corpus_size(ctx.paths.corpus)


# ---- SFT data ------------------------------------------------------------------------------------


def dropped_words(words: list[str], keep: float, rng: random.Random) -> list[str]:
    """Each of ``words`` kept with probability ``keep`` (order kept; at least one word stays)."""
    if keep >= 1.0:
        return list(words)
    kept = [w for w in words if rng.random() < keep]
    return kept or [rng.choice(words)]


def sft_frame(rows: pd.DataFrame, n_words: int, where: str, keep: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Prompt/response pairs for prepared seqrec rows: the last title's first ``n_words`` content words as the
    answer, each kept with probability ``keep`` (seeded, independent of the row; no target is read).

    Raises ValueError naming ``where`` and the row when a row has no history title with a content word.
    """
    rng = random.Random(seed)
    responses = []
    for i, extra in enumerate(rows["extra_info"]):
        titles = [] if extra.get("history_titles") is None else list(extra["history_titles"])
        words = content_words(titles[-1])[:n_words] if titles else []
        if not words:
            raise ValueError(f"{where}, row {i}: no last title with a content word: {titles[-1:]!r}")
        responses.append(format_response(" ".join(dropped_words(words, keep, rng))))
    return pd.DataFrame({"prompt": rows["prompt"].tolist(), "response": responses,
                         "data_source": rows["data_source"].tolist(), "request": rows["request"].tolist()})


def run_sft_data(ctx: StageContext) -> str:
    s, p = ctx.settings, ctx.paths
    train, val = read_train_and_val(p, ctx.val_source)
    sft_train = sft_frame(train, s.naive_words, p.split("train"), s.sft_word_keep, s.seed)
    sft_val = sft_frame(val.head(100), s.naive_words, p.split("val"), s.sft_word_keep, s.seed)
    rl_val, test, prompt_max = write_sft_and_eval_files(p, s, train, val, sft_train, sft_val)
    return (f"{len(sft_train)} SFT pairs (e.g. {sft_train['response'].iloc[0][:80]}...), {len(rl_val)} val and "
            f"{len(test)} test histories; prompts up to {prompt_max} tokens")


# ---- evaluation ----------------------------------------------------------------------------------


def run_eval(ctx: StageContext) -> str:
    from recr1.eval import evaluate

    s, p = ctx.settings, ctx.paths
    models = {BASELINE: None, "sft": p.sft_model(s.sft_steps), "rl": p.rl_model(s.rl_steps)}
    overall = {}
    for method, model in models.items():
        table = evaluate(p.test_eval, p.index, "bm25", p.eval_dir(method), model=model,
                         max_new_tokens=s.response_length, batch_size=64, device="cpu",
                         searcher_settings=searcher_settings(s), baseline=BASELINE)
        overall[method] = table.get("all", next(iter(table.values())))["ndcg@100"]
        ctx.say(f"{method:12s} test NDCG@100 {overall[method]:.3f}")
    # the last title on the RL validation set: the baseline line of the val curve
    evaluate(p.rl_val, p.index, "bm25", p.eval_dir(f"{BASELINE}_val"), searcher_settings=searcher_settings(s),
             baseline=BASELINE)
    return ", ".join(f"{m} {v:.3f}" for m, v in overall.items()) + " (test NDCG@100)"


def valid_eval(ctx: StageContext) -> bool:
    return all(os.path.isfile(os.path.join(ctx.paths.eval_dir(m), "metrics.json"))
               for m in (BASELINE, "sft", "rl", f"{BASELINE}_val"))


# ---- GRPO ----------------------------------------------------------------------------------------

# The reward scores amazon_review_* validation rows at Rec-R1's k_eval of 50; the demo's curve is NDCG@100 like its
# test table and the baseline line (training keeps Rec-R1's k_train of 5000).
K_EVAL_OVERRIDE = "custom_reward_function.reward_kwargs.k_eval=100"


def run_rl(ctx: StageContext, resume: bool = False) -> str:
    import dataclasses

    from recr1.demo.stages import run_rl as run_grpo

    settings = dataclasses.replace(ctx.settings,
                                   extra_rl_overrides=[K_EVAL_OVERRIDE, *ctx.settings.extra_rl_overrides])
    return run_grpo(dataclasses.replace(ctx, settings=settings), resume=resume)
