"""`python -m recr1.demo` end to end at toy scale: every stage runs, the report is complete, a rerun skips all.

(At this scale nothing is learned; the full demo's learning is measured by running it, see README.md.)
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOY = ["items=400", "requests=160", "val_size=10", "vocab_words=300", "layers=2", "hidden=64", "heads=2",
       "sft_steps=2", "sft_batch=8", "rl_steps=2", "rl_prompts=2", "rl_n=2", "rl_val_rows=4", "test_freq=1",
       "eval_rows=8", "response_length=24"]


def _demo(out, *extra):
    cmd = [sys.executable, "-m", "recr1.demo", "--fast", "--out", str(out), "--seed", "3"]
    for item in TOY:
        cmd += ["--set", item]
    proc = subprocess.run(cmd + list(extra), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_demo_runs_every_stage_writes_the_report_and_then_skips_everything(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out)
    for stage in ("synthetic catalog", "Lucene index", "prepare parquet", "tiny policy", "SFT data",
                  "SFT warm start", "GRPO", "evaluation"):
        assert f"{stage}" in first and "FAILED" not in first
    assert "| **overall** | rl |" in first

    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == 3
    for method in ("raw_request", "sft", "rl"):
        table = results["test"][method]
        assert list(table)[0] == "overall" and len(table) == 5  # overall + the 4 held-out categories
        for row in table.values():
            assert 0.0 <= row["ndcg@10"] <= row["ndcg@100"] <= 1.0 and 0.0 <= row["recall@100"] <= 1.0
    assert results["test"]["raw_request"]["overall"]["format_ok"] is None
    assert results["test"]["rl"]["overall"]["format_ok"] is not None
    assert [point[0] for point in results["val_curve"]] == [0, 1, 2]
    assert set(results["stages"]) == {"catalog", "prepare", "index", "policy", "sft_data", "sft", "rl", "eval"}
    assert (out / "results.md").read_text().count("| **overall** |") == 3
    assert (out / "curves.png").stat().st_size > 1000
    # the preset asks for hf_model: the evaluation stage loads these weights
    assert (out / "rl" / "ckpt" / "global_step_2" / "actor" / "huggingface" / "model.safetensors").is_file()

    second = _demo(out)
    assert second.count("up to date") == 8 and "running" not in second
    assert json.loads((out / "results.json").read_text())["test"] == results["test"]
