"""The trainer's validation logs recr1.eval's numbers: the same checkpoint, data and index give the same ndcg@10,
ndcg@100, recall@100, mrr and format_ok per data source (greedy), and the val/generations rows carry the query, the
target's rank and the top-3 product titles.

The checkpoint is the tiny Qwen2 fine-tuned here (seconds) to answer four requests in four ways, so the numbers are
not all zero: a hit at rank 1, a query under malformed tags (scored by both, punished by the reward), a query that
ranks the target second, and no answer at all.
"""
import json
import math
import os
import sys

import pytest
import torch

from recr1.data.records import make_row, write_rows
from recr1.eval import evaluate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "verl", "trainer"))
from trainer_testlib import toy_overrides  # noqa: E402

MAX_NEW_TOKENS = 32
CASES = [  # data_source, request, targets, the response the checkpoint learns
    ("amazon_c4_Baby_test", "I want red leather running shoes", ["shoe-red"],
     '<think>red</think><answer>{"query": "red leather shoes"}</answer>'),
    ("amazon_c4_Baby_test", "looking for a vintage brass compass", ["tie-m"],
     '<answer>{"query": "brass compass"}</answer>'),
    ("amazon_c4_Office_test", "a good kitchen knife please", ["knife-steel"],
     '<think>knife</think><answer>{"query": "knife white blade"}</answer>'),
    ("amazon_c4_Office_test", "wireless headphones for the gym", ["phones-wireless"], "no idea"),
]
METRICS = ("ndcg@10", "ndcg@100", "recall@100", "mrr", "format_ok")


def fine_tune(model_dir: str, prompts: list, responses: list[str], out_dir: str, max_steps: int = 400) -> str:
    """The tiny model trained until greedy decoding answers each prompt with its response and then EOS; saved to
    out_dir (model + tokenizer). Fails if it never gets there."""
    from transformers import AutoModelForCausalLM

    from verl.utils.dataset.rl_dataset import encode_prompts
    from verl.utils.generation_config import model_eos_token_ids
    from verl.workers.sharding import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    eos = model_eos_token_ids(model_dir, tokenizer)[0]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompt_ids = [list(map(int, ids)) for ids in encode_prompts(prompts, tokenizer, model_dir)]
    answers = [tokenizer(r, add_special_tokens=False)["input_ids"] + [eos] for r in responses]
    sequences = [torch.tensor(p + a) for p, a in zip(prompt_ids, answers)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def greedy_ok() -> bool:
        model.eval()
        with torch.no_grad():
            for p, a in zip(prompt_ids, answers):
                out = model.generate(torch.tensor([p]), max_new_tokens=len(a), do_sample=False, eos_token_id=eos,
                                     pad_token_id=tokenizer.pad_token_id)
                if out[0, len(p):].tolist() != a:
                    return False
        return True

    for step in range(max_steps):
        model.train()
        loss = 0.0
        for seq, p in zip(sequences, prompt_ids):
            logits = model(seq[None, :-1]).logits[0]
            loss = loss + torch.nn.functional.cross_entropy(logits[len(p) - 1:], seq[len(p):])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 24 and greedy_ok():
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
            return out_dir
    raise AssertionError(f"the tiny model did not learn its {len(responses)} answers in {max_steps} steps")


@pytest.fixture(scope="module")
def val_parquet(tmp_path_factory) -> str:
    rows = [make_row(data_source=source, request=request, target=targets, split="test", index=i, qid=f"q{i}",
                     category=source.split("_")[2]) for i, (source, request, targets, _) in enumerate(CASES)]
    path = str(tmp_path_factory.mktemp("val_data") / "test.parquet")
    write_rows(rows, path)
    return path


@pytest.fixture(scope="module")
def one_thread_module():
    """Tiny models on a shared 2-core machine run many times faster on one thread (no waiting for a busy core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def answering_model(one_thread_module, tiny_model_dir, val_parquet, tmp_path_factory) -> str:
    import pandas as pd

    prompts = [[dict(message) for message in p] for p in pd.read_parquet(val_parquet)["prompt"]]
    return fine_tune(tiny_model_dir, prompts, [c[3] for c in CASES], str(tmp_path_factory.mktemp("answering")))


def test_trainer_validation_equals_recr1_eval(answering_model, val_parquet, lucene_index_dir, tmp_path, clean_process):
    from verl.trainer.main_ppo import load_config, run_ppo

    table = evaluate(val_parquet, lucene_index_dir, "bm25", str(tmp_path / "eval"), model=answering_model,
                     max_new_tokens=MAX_NEW_TOKENS, batch_size=4, device="cpu")
    records = [json.loads(line) for line in open(tmp_path / "eval" / "requests.jsonl")]
    assert [r["reason"] for r in records] == ["ok", "bad_tags", "ok", "no_answer"]  # the checkpoint answers as taught

    run_dir = tmp_path / "run"
    overrides = toy_overrides(answering_model, str(tmp_path / "toy"), **{
        "data.train_files": val_parquet, "data.val_files": val_parquet,
        "data.max_prompt_length": 512, "data.max_response_length": MAX_NEW_TOKENS,
        "custom_reward_function.path": "recr1.reward", "custom_reward_function.name": "compute_score_batch",
        "+custom_reward_function.reward_kwargs.index": lucene_index_dir,
        "reward_model.reward_manager": "batch",
        "reward_model.val_core_extra_keys": '["ndcg@*","recall@*",mrr,format_ok]',
        "trainer.default_local_dir": str(run_dir), "trainer.val_before_train": True, "trainer.val_only": True,
        "trainer.log_val_generations": len(CASES), "actor_rollout_ref.rollout.val_kwargs.do_sample": False})
    metrics = run_ppo(load_config(overrides))

    for source in ("amazon_c4_Baby_test", "amazon_c4_Office_test"):
        for name in METRICS:
            assert metrics[f"val-core/{source}/{name}"] == pytest.approx(table[source][name], abs=1e-9), (source, name)
    baby, office = table["amazon_c4_Baby_test"], table["amazon_c4_Office_test"]
    assert baby["ndcg@10"] > 0.5 and baby["format_ok"] == 0.5 and 0 < office["mrr"] < 1  # not a trivial match
    # The reward punishes the malformed tags the metrics ignore: (1.1 + -2) / 2 on Baby.
    assert metrics["val-core/amazon_c4_Baby_test/reward/mean"] == pytest.approx((1.1 - 2.0) / 2)

    rows = [json.loads(line) for line in open(run_dir / "validation_generations" / "0.jsonl")]
    by_query = {row["query"]: row for row in rows}
    assert set(by_query) == {"red leather shoes", "brass compass", "knife white blade", None}
    red = by_query["red leather shoes"]
    assert red["target_rank"] == 1 and red["top3_titles"][0] == "shoe-red: red leather running shoes for men"
    assert red["top3_ids"] == ["shoe-red", "shoe-blue"]  # no other product has any of the three words
    knife = by_query["knife white blade"]
    assert knife["target_rank"] == 2 and knife["score"] == pytest.approx(0.1 + 1 / math.log2(3))
    assert knife["top3_titles"][:2] == ["knife-ceramic: ceramic kitchen knife with a white blade",
                                        "knife-steel: stainless steel kitchen knife set with wooden block"]
    assert by_query[None]["top3_titles"] == [] and by_query[None]["reason"] == "no_answer"
    for row in rows:
        record = next(r for r in records if r["query"] == (row["query"] or ""))
        assert row["output"] == record["response"] and row["mrr"] == pytest.approx(record["mrr"])
