"""The demo's stages. Each has ``run(ctx) -> summary`` and ``valid(ctx) -> bool`` (are its outputs complete?).

Data, index, policy and evaluation run in this process (library calls, output to the stage's log file);
SFT and GRPO run as ``python -m verl.trainer.main_sft`` / ``main_ppo`` child processes, exactly as a user
would run them (the command is at the top of their log).
"""
from __future__ import annotations

import glob
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from recr1.demo.commands import rl_command, sft_command
from recr1.demo.naive_query import NAIVE_THINK, format_response
from recr1.demo.paths import DemoPaths
from recr1.demo.report import METHODS, curve
from recr1.demo.runner import command_text, run_child
from recr1.demo.settings import DemoSettings

VAL_SOURCE = "amazon_c4_val"
LENGTHS_FILE = "lengths.json"


@dataclass
class StageContext:
    """What every stage sees: settings, paths, and how to report progress."""

    settings: DemoSettings
    paths: DemoPaths
    say: Callable[[str], None]  # one progress line to the console
    verbose: bool = False
    facts: dict = field(default_factory=dict)  # values measured by one stage and used by later ones
    val_source: str = VAL_SOURCE  # the data source of the RL validation curve


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _round_up(n: int, multiple: int = 8) -> int:
    return int(math.ceil(n / multiple) * multiple)


# ---- catalog -------------------------------------------------------------------------------------


def run_catalog(ctx: StageContext) -> str:
    from recr1.data.synthetic import generate_catalog

    s = ctx.settings
    summary = generate_catalog(ctx.paths.raw, s.items, s.requests, s.data_seed)
    return f"{summary['items']} items in {len(summary['categories'])} categories, {summary['requests']} requests"


def valid_catalog(ctx: StageContext) -> bool:
    from recr1.data.item_pool import ITEM_FILE
    from recr1.data.synthetic import REQUEST_FILE

    items, requests = os.path.join(ctx.paths.raw, ITEM_FILE), os.path.join(ctx.paths.raw, REQUEST_FILE)
    return (os.path.isfile(items) and os.path.isfile(requests) and _count_lines(items) == ctx.settings.items)


# ---- prepare -------------------------------------------------------------------------------------


def run_prepare(ctx: StageContext) -> str:
    from recr1.data.amazon_c4 import prepare
    from recr1.data.item_pool import ITEM_FILE
    from recr1.data.synthetic import REQUEST_FILE
    from recr1.data.prompts import PROMPT_TEMPLATES
    from recr1.demo.templates import ensure_demo_templates, rewrite_prompts

    s, p = ctx.settings, ctx.paths
    ensure_demo_templates()
    # the standard preparation (Rec-R1's split, the sparse template) goes to data/prepared/; the demo's files
    # are the same rows with the demo's prompts
    template = s.prompt_template if s.prompt_template in PROMPT_TEMPLATES else "sparse"
    summary = prepare(os.path.join(p.raw, REQUEST_FILE), os.path.join(p.raw, ITEM_FILE), p.prepared,
                      template=template, val_size=s.val_size, seed=s.data_seed)
    for name in ("train", "val", "test"):
        frame = pd.read_parquet(os.path.join(p.prepared, f"{name}.parquet"))
        rewrite_prompts(frame, s.prompt_template).to_parquet(p.split(name), index=False)
    rows = summary["rows"]
    domains = sum(1 for src in summary["data_sources"] if src.endswith("_test"))
    return f"train {rows['train']}, val {rows['val']}, test {rows['test']} requests ({domains} held-out categories)"


def valid_prepare(ctx: StageContext) -> bool:
    return all(os.path.isfile(ctx.paths.split(name)) for name in ("train", "val", "test")) and \
        _rows(ctx.paths.split("train")) > 0


# ---- corpus + index ------------------------------------------------------------------------------


def run_index(ctx: StageContext) -> str:
    from recr1.data.corpus import export_item_pool
    from recr1.data.item_pool import ITEM_FILE
    from recr1.retrieval.build_lucene import build_lucene_index

    p = ctx.paths
    _, n_docs = export_item_pool(os.path.join(p.raw, ITEM_FILE), p.corpus)
    # one thread: doc ids in product-id order, so ties need no second, sorted search (2.7x faster at k=1000)
    n_indexed = build_lucene_index(p.corpus, p.index, threads=1, overwrite=True, jvm_heap="1g")
    return f"{n_docs} products exported to {p.corpus}, {n_indexed} indexed with Lucene BM25"


def valid_index(ctx: StageContext) -> bool:
    docids = os.path.join(ctx.paths.index, "docids.txt")
    return os.path.isfile(docids) and _count_lines(docids) == ctx.settings.items


# ---- tiny policy ---------------------------------------------------------------------------------


def _prompt_contents(path: str) -> list[str]:
    frame = pd.read_parquet(path, columns=["prompt"])
    return [m["content"] for messages in frame["prompt"] for m in messages]


def run_policy(ctx: StageContext) -> str:
    import torch  # noqa: F401  (imported first: transformers is slow to import without it)
    from verl.utils.tiny_model import build_tiny_qwen2, build_tokenizer, save_tokenizer

    s, p = ctx.settings, ctx.paths
    texts = []
    for shard in sorted(glob.glob(os.path.join(p.corpus, "*.jsonl"))):
        with open(shard, encoding="utf-8") as f:
            texts.extend(json.loads(line)["contents"] for line in f if line.strip())
    # the answer format, so its pieces become whole tokens too
    texts += _prompt_contents(p.split("train")) + [format_response("query words")]
    tokenizer = build_tokenizer(texts, kind="word", vocab_size=s.vocab_words)
    model = build_tiny_qwen2(tokenizer, layers=s.layers, hidden=s.hidden, heads=s.heads, seed=s.seed)
    os.makedirs(p.init_model, exist_ok=True)
    save_tokenizer(tokenizer, p.init_model)
    model.save_pretrained(p.init_model)
    n_params = sum(t.numel() for t in model.parameters())
    return (f"Qwen2 {s.layers} layers x {s.hidden} hidden, {n_params / 1e6:.2f}M parameters, "
            f"word-level vocabulary of {len(tokenizer)} tokens")


def valid_policy(ctx: StageContext) -> bool:
    d = ctx.paths.init_model
    return _hf_dir_ok(d) and os.path.isfile(os.path.join(d, "tokenizer.json"))


# ---- SFT data, RL val set, test subset, sequence lengths -----------------------------------------


def stratified_head(frame: pd.DataFrame, n: int, column: str = "data_source") -> pd.DataFrame:
    """About ``n`` rows with every value of ``column`` equally represented (first rows of each group)."""
    groups = frame.groupby(column, sort=True)
    per_group = max(1, n // max(1, groups.ngroups))
    return pd.concat([g.head(per_group) for _, g in groups]).reset_index(drop=True)


def _token_lengths(tokenizer, prompts, responses=None) -> list[int]:
    texts = [tokenizer.apply_chat_template(list(m), add_generation_prompt=True, tokenize=False) for m in prompts]
    if responses is not None:
        texts = [t + r + tokenizer.eos_token for t, r in zip(texts, responses)]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def read_train_and_val(p, val_source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prepared train rows and the val rows of ``val_source`` (an error naming the file when it has none)."""
    train = pd.read_parquet(p.split("train"))
    val = pd.read_parquet(p.split("val"))
    val = val[val["data_source"] == val_source].reset_index(drop=True)
    if val.empty:
        raise ValueError(f"{p.split('val')} has no {val_source} rows")
    return train, val


def write_sft_and_eval_files(p, s, train: pd.DataFrame, val: pd.DataFrame, sft_train: pd.DataFrame,
                             sft_val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Write the SFT pairs, RL's greedy val rows, the test rows to evaluate and the token lengths (LENGTHS_FILE) the
    SFT and RL stages size themselves by. Returns (RL val rows, test rows, the longest prompt in tokens)."""
    from transformers import AutoTokenizer

    os.makedirs(os.path.dirname(p.sft_data("train")), exist_ok=True)
    sft_train.to_parquet(p.sft_data("train"), index=False)
    sft_val.to_parquet(p.sft_data("val"), index=False)
    rl_val = val.head(s.rl_val_rows)
    rl_val.to_parquet(p.rl_val, index=False)
    test = pd.read_parquet(p.split("test"))
    if s.eval_rows > 0:
        test = stratified_head(test, s.eval_rows)
    test.to_parquet(p.test_eval, index=False)

    tokenizer = AutoTokenizer.from_pretrained(p.init_model)
    prompt_max = max(_token_lengths(tokenizer, pd.concat([train["prompt"], rl_val["prompt"]])))
    both = pd.concat([sft_train, sft_val])
    sft_max = max(_token_lengths(tokenizer, both["prompt"], both["response"]))
    facts = {"prompt_length": _round_up(prompt_max), "sft_max_length": _round_up(sft_max)}
    with open(os.path.join(os.path.dirname(p.sft_data("train")), LENGTHS_FILE), "w") as f:
        json.dump(facts, f)
    return rl_val, test, prompt_max


def run_sft_data(ctx: StageContext) -> str:
    from recr1.demo.sft_data import build_sft_frame, sft_pairs

    s, p = ctx.settings, ctx.paths
    train, val = read_train_and_val(p, VAL_SOURCE)
    # rebuilding the prompts with the template gives the prepared ones again (run_prepare wrote them with it)
    sft_train = sft_pairs(train, s.naive_words, p.split("train"), s.prompt_template, s.sft_swapped_copies,
                          p.corpus, s.seed)
    sft_val = build_sft_frame(val.head(100), s.naive_words, where=p.split("val"))
    rl_val, test, prompt_max = write_sft_and_eval_files(p, s, train, val, sft_train, sft_val)
    example = sft_train["response"].iloc[0]
    return (f"{len(sft_train)} SFT pairs ({len(train)} requests + {len(sft_train) - len(train)} word-swapped "
            f"copies; e.g. {example[:80]}...), {len(rl_val)} val and {len(test)} test requests; prompts up to "
            f"{prompt_max} tokens")


def valid_sft_data(ctx: StageContext) -> bool:
    p = ctx.paths
    lengths = os.path.join(os.path.dirname(p.sft_data("train")), LENGTHS_FILE)
    if not all(os.path.isfile(f) for f in (p.sft_data("train"), p.sft_data("val"), p.rl_val, p.test_eval, lengths)):
        return False
    with open(lengths) as f:
        ctx.facts.update(json.load(f))
    return True


# ---- SFT -----------------------------------------------------------------------------------------


class _Progress:
    """Prints one line per ``every`` seconds from a trainer's metrics rows."""

    def __init__(self, ctx: StageContext, total: int, describe: Callable[[dict], str], every: float = 15.0):
        self.ctx, self.total, self.describe, self.every = ctx, total, describe, every
        self.start = time.time()
        self.last_print = 0.0
        self.first_step: int | None = None  # a resumed run starts past 0
        self.state: dict = {}

    def __call__(self, rows: list[dict]) -> None:
        for row in rows:
            self.state.update({k: v for k, v in row.items() if v is not None})
        step = int(self.state.get("step", 0))
        if self.first_step is None:
            self.first_step = max(0, int(rows[0].get("step", 1)) - 1)
        now = time.time()
        if now - self.last_print < self.every and step < self.total:
            return
        self.last_print = now
        elapsed = now - self.start
        done = step - self.first_step
        eta = f", ~{elapsed / done * (self.total - step) / 60:.1f} min left" if 0 < done and step < self.total else ""
        self.ctx.say(f"step {step}/{self.total}  {self.describe(self.state)}  ({elapsed / 60:.1f} min{eta})")


def thread_env(s: DemoSettings) -> dict:
    """OMP_NUM_THREADS for a trainer child when ``threads`` is set (torch reads it at start)."""
    return {"OMP_NUM_THREADS": str(s.threads)} if s.threads > 0 else {}


def _facts(ctx: StageContext) -> dict:
    if "prompt_length" not in ctx.facts:
        valid_sft_data(ctx)
    return ctx.facts


def run_sft(ctx: StageContext) -> str:
    s, p = ctx.settings, ctx.paths
    shutil.rmtree(p.sft_ckpt, ignore_errors=True)
    cmd = sft_command(s, p, _facts(ctx)["sft_max_length"])
    ctx.say(f"$ {command_text(cmd)[:160]}...  (full command and output: {p.log('sft')})")
    progress = _Progress(ctx, s.sft_steps, lambda m: f"loss {m.get('train/loss', float('nan')):.3f}")
    run_child(cmd, p.log("sft"), progress, p.metrics_jsonl("sft"), ctx.verbose, env=thread_env(s))
    last = read_metrics(p.metrics_jsonl("sft"))[-1]
    val = f", val loss {last['val/loss']:.3f}" if "val/loss" in last else ""
    return f"{s.sft_steps} steps, train loss {last.get('train/loss', float('nan')):.3f}{val}"


def _hf_dir_ok(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json")) and bool(glob.glob(os.path.join(path, "*.safetensors")))


def valid_sft(ctx: StageContext) -> bool:
    return _hf_dir_ok(ctx.paths.sft_model(ctx.settings.sft_steps))


# ---- GRPO ----------------------------------------------------------------------------------------

def val_ndcg_key(val_source: str = VAL_SOURCE) -> str:
    """The metrics key of the validation NDCG of ``val_source`` (at the reward's k_eval)."""
    return f"val-aux/{val_source}/ndcg/mean"


VAL_NDCG_KEY = val_ndcg_key()


def _rl_describer(val_key: str) -> Callable[[dict], str]:
    def describe(m: dict) -> str:
        text = (f"reward {m.get('critic/score/mean', float('nan')):.3f}  "
                f"train ndcg {m.get('reward/ndcg/mean', float('nan')):.3f}")
        if val_key in m:
            text += f"  val ndcg {m[val_key]:.3f}"
        return text

    return describe


def run_rl(ctx: StageContext, resume: bool = False) -> str:
    s, p = ctx.settings, ctx.paths
    if not resume:
        shutil.rmtree(p.rl_ckpt, ignore_errors=True)
    cmd = rl_command(s, p, _facts(ctx)["prompt_length"])
    ctx.say(f"$ {command_text(cmd)[:160]}...  (full command and output: {p.log('rl')})")
    val_key = val_ndcg_key(ctx.val_source)
    progress = _Progress(ctx, s.rl_steps, _rl_describer(val_key))
    run_child(cmd, p.log("rl"), progress, p.metrics_jsonl("rl"), ctx.verbose, env=thread_env(s))
    val_curve = curve(read_metrics(p.metrics_jsonl("rl")), val_key)
    val = f"; val NDCG {val_curve[0][1]:.3f} -> {val_curve[-1][1]:.3f}" if val_curve else ""
    return f"{s.rl_steps} GRPO steps{val}"


def valid_rl(ctx: StageContext) -> bool:
    return _hf_dir_ok(ctx.paths.rl_model(ctx.settings.rl_steps)) and os.path.isfile(ctx.paths.metrics_jsonl("rl"))


def read_metrics(path: str) -> list[dict]:
    """Rows of a trainer's metrics.jsonl (empty when missing)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- evaluation ----------------------------------------------------------------------------------


def searcher_settings(s: DemoSettings) -> dict:
    """The BM25 settings of the reward, so evaluation ranks exactly as training did."""
    return {"jvm_heap": "1g", "dedup_terms": s.dedup_terms}


def run_eval(ctx: StageContext) -> str:
    from recr1.eval import evaluate

    s, p = ctx.settings, ctx.paths
    models = {"raw_request": None, "sft": p.sft_model(s.sft_steps), "rl": p.rl_model(s.rl_steps)}
    overall = {}
    for method, model in models.items():
        table = evaluate(p.test_eval, p.index, "bm25", p.eval_dir(method), model=model,
                         max_new_tokens=s.response_length, batch_size=64, device="cpu",
                         searcher_settings=searcher_settings(s))
        overall[method] = table.get("all", next(iter(table.values())))["ndcg@100"]
        ctx.say(f"{method:12s} test NDCG@100 {overall[method]:.3f}")
    # the raw request on the RL validation set: the baseline line of the val curve
    evaluate(p.rl_val, p.index, "bm25", p.eval_dir("raw_request_val"), searcher_settings=searcher_settings(s))
    return ", ".join(f"{m} {v:.3f}" for m, v in overall.items()) + " (test NDCG@100)"


def valid_eval(ctx: StageContext) -> bool:
    return all(os.path.isfile(os.path.join(ctx.paths.eval_dir(m), "metrics.json"))
               for m in (*METHODS, "raw_request_val"))
