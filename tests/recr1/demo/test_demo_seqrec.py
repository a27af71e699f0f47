"""`python -m recr1.demo --task seqrec`: the sequential-recommendation demo's pieces and its smoke run."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from recr1.demo.naive_query import format_response
from recr1.demo.report import domain_name, verdict
from recr1.demo.seeds import summarize
from recr1.demo.seqrec_stages import dropped_words, seqrec_prompt, sft_frame
from recr1.demo.settings import TASKS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TITLES = ["Acme Soft Cotton Towel, Blue, Large", "Acme Quick Cotton Mug, Blue, Small"]


def test_prompt_shows_the_titles_content_words_oldest_first():
    content = seqrec_prompt(TITLES)[0]["content"]
    assert content.startswith("Bought, oldest first: Acme Soft Cotton Towel Blue Large ; Acme Quick Cotton Mug Blue")
    assert content.endswith("Write a search query for the next item.")


def test_sft_answer_is_the_last_title_and_never_the_target():
    rows = pd.DataFrame({"prompt": [seqrec_prompt(TITLES)] * 2, "data_source": ["amazon_review_S_train"] * 2,
                         "request": ["r", "r"], "extra_info": [{"history_titles": TITLES}] * 2,
                         "reward_model": [{"ground_truth": {"target": ["B01"]}}, {"ground_truth": {"target": ["B02"]}}]})
    frame = sft_frame(rows, n_words=12, where="train.parquet")
    assert frame["response"].tolist() == [format_response("Acme Quick Cotton Mug Blue Small")] * 2
    bad = rows.assign(extra_info=[{"history_titles": TITLES}, {"history_titles": ["the and of"]}])
    with pytest.raises(ValueError, match="train.parquet, row 1: no last title with a content word"):
        sft_frame(bad, n_words=12, where="train.parquet")


def test_sft_word_dropout_is_seeded_keeps_order_and_never_empties():
    rows = pd.DataFrame({"prompt": [seqrec_prompt(TITLES)] * 200, "data_source": ["s"] * 200, "request": ["r"] * 200,
                         "extra_info": [{"history_titles": TITLES}] * 200})
    a = sft_frame(rows, 12, "train.parquet", keep=0.75, seed=4)["response"].tolist()
    assert a == sft_frame(rows, 12, "train.parquet", keep=0.75, seed=4)["response"].tolist()
    assert a != sft_frame(rows, 12, "train.parquet", keep=0.75, seed=5)["response"].tolist()
    full = "Acme Quick Cotton Mug Blue Small".split()
    queries = [json.loads(r.split("<answer>")[1].split("</answer>")[0])["query"].split() for r in a]
    assert all(q and q == [w for w in full if w in q] for q in queries)  # a non-empty subsequence of the title
    kept = sum(len(q) for q in queries) / (len(full) * len(queries))
    assert 0.65 < kept < 0.85 and dropped_words(full, 1.0, None) == full


def test_report_and_seed_summary_use_the_last_title_baseline():
    assert domain_name("amazon_review_Synthetic_Store_inductive_test") == "Synthetic_Store_inductive"
    assert domain_name("amazon_review_Synthetic_Store_test") == "Synthetic_Store"
    test = {m: {"overall": {"ndcg@100": v}} for m, v in (("last_title", 0.2), ("sft", 0.2), ("rl", 0.3))}
    v = verdict(test, "last_title")
    assert v["rl_beats_last_title"] and v["rl_beats_sft"] and v["rl_over_last_title"] == 1.5
    runs = [{"seed": s, "baseline": "last_title", "total_seconds": 60,
             "test": {m: {"overall": {"ndcg@100": x + s / 100}} for m, x in (("last_title", 0.2), ("sft", 0.2),
                                                                            ("rl", 0.3))}} for s in (1, 2)]
    summary = summarize(runs)
    assert summary["baseline"] == "last_title" and summary["margin"]["last_title"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="different baselines"):
        summarize([runs[0], {**runs[1], "baseline": "raw_request"}])


def test_profiles_exist_for_both_tasks():
    assert TASKS["search"]["full"].task == "search" and TASKS["seqrec"]["full"].task == "seqrec"
    assert TASKS["seqrec"]["fast"].rl_steps < TASKS["seqrec"]["full"].rl_steps and TASKS["seqrec"]["full"].users > 0


TOY = ["items=100", "users=60", "vocab_words=300", "hidden=64", "heads=2", "sft_steps=2", "sft_batch=8",
       "rl_steps=2", "rl_prompts=2", "rl_n=2", "rl_val_rows=4", "test_freq=1", "eval_rows=8", "response_length=24"]


def _demo(out):
    cmd = [sys.executable, "-m", "recr1.demo", "--task", "seqrec", "--fast", "--out", str(out), "--seed", "3"]
    for item in TOY:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_seqrec_smoke_runs_every_stage_and_reports_against_the_last_title(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out)
    for stage in ("synthetic reviews", "prepare parquet", "Lucene index", "tiny policy", "SFT data",
                  "SFT warm start", "GRPO", "evaluation"):
        assert stage in first and "FAILED" not in first
    assert "RL vs last title" in first
    results = json.loads((out / "results.json").read_text())
    assert results["baseline"] == "last_title" and list(results["test"]) == ["last_title", "sft", "rl"]
    for table in results["test"].values():
        assert list(table) == ["overall", "Synthetic_Store", "Synthetic_Store_inductive"]
        assert all(0.0 <= row["ndcg@10"] <= row["ndcg@100"] <= 1.0 for row in table.values())
    assert results["test"]["last_title"]["overall"]["ndcg@100"] > 0  # the baseline finds some next items
    assert [point[0] for point in results["val_curve"]] == [0, 1, 2]
    assert (out / "curves.png").stat().st_size > 1000
    queries = [json.loads(line)["query"] for line in open(out / "eval" / "last_title" / "requests.jsonl")]
    test = pd.read_parquet(out / "data" / "test_eval.parquet")
    assert queries == [e["history_titles"][-1] for e in test["extra_info"]]
    assert _demo(out).count("up to date") == 8
