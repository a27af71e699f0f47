"""Fast checks of the training-throughput benchmark's parts (the full benchmark runs both trainers for minutes).

Covered: the shared work is really identical and fixed-length (prompt token lengths, unreachable EOS), the toy
reward, the peak-RSS monitor, the report arithmetic and plot. (The sampler's distribution is tested with the
rollout, tests/verl/workers/rollout/test_hf_rollout.py.)
"""
from __future__ import annotations

import json
import os
import sys

import pytest

BENCH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "bench"))
sys.path.insert(0, BENCH)

import bench_task  # noqa: E402
from bench_report import comparison_table, plot, pooled, ratio, sweep_table  # noqa: E402
from bench_runs import RunResult, RunSpec, ours_overrides  # noqa: E402
from proc_monitor import run_monitored  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench_assets"))
    meta = bench_task.build_assets(out, layers=1, hidden=64, heads=2, vocab_words=60, num_prompts=16,
                                   prompt_words=5, seed=3)
    return out, meta


def test_assets_give_both_trainers_identical_fixed_length_work(assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, meta = assets
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(out, "model"))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(out, "model"))
    # EOS survives the save/reload and lies past the vocabulary: no response can end early
    assert tokenizer.eos_token == bench_task.BENCH_EOS
    assert tokenizer.eos_token_id == meta["eos_token_id"] >= model.config.vocab_size
    assert model.generation_config.eos_token_id == meta["eos_token_id"]
    # TRL reads prompts.jsonl, ours reads prompts.parquet: same texts, same token length
    import pandas as pd

    with open(os.path.join(out, "prompts.jsonl")) as f:
        trl_prompts = [json.loads(line)["prompt"] for line in f]
    ours = pd.read_parquet(os.path.join(out, "prompts.parquet"))
    assert list(ours["prompt"]) == trl_prompts
    lengths = {len(ids) for ids in tokenizer(trl_prompts, add_special_tokens=False)["input_ids"]}
    assert lengths == {meta["prompt_tokens"]}


def test_assets_are_reused_for_the_same_spec(assets):
    out, meta = assets
    before = os.path.getmtime(os.path.join(out, "model", "config.json"))
    again = bench_task.build_assets(out, layers=1, hidden=64, heads=2, vocab_words=60, num_prompts=16,
                                    prompt_words=5, seed=3)
    assert again == meta
    assert os.path.getmtime(os.path.join(out, "model", "config.json")) == before


def test_toy_reward_is_the_vowel_fraction_on_both_signatures():
    assert bench_task.toy_score("apple banana egg") == pytest.approx(2 / 3)
    assert bench_task.toy_score("") == 0.0
    assert bench_task.compute_score("bench_toy", "Ice owl", None, {}) == 1.0
    assert bench_task.trl_reward(["odd", "zz top"]) == [1.0, 0.0]


def test_our_overrides_make_one_update_per_step_on_the_whole_batch(assets):
    out, meta = assets
    spec = RunSpec(prompts_per_step=4, group=3, response_length=16, steps=2)
    overrides = dict(o.split("=", 1) for o in ours_overrides(spec, out, meta, "/tmp/x"))
    assert overrides["data.train_batch_size"] == overrides["actor_rollout_ref.actor.ppo_mini_batch_size"] == "4"
    assert overrides["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"] == "12"
    assert overrides["actor_rollout_ref.rollout.n"] == "3"
    assert overrides["data.max_prompt_length"] == str(meta["prompt_tokens"])
    assert overrides["actor_rollout_ref.actor.use_kl_loss"] == "False"


def test_monitor_sees_the_peak_memory_of_a_child(tmp_path):
    code = "import time; b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    run = run_monitored([sys.executable, "-c", code], str(tmp_path / "log.txt"), poll_s=0.02)
    assert run.returncode == 0
    assert run.peak_rss_mib > 150
    assert run.wall_s >= 0.6


def test_monitor_kills_a_run_past_its_timeout(tmp_path):
    run = run_monitored([sys.executable, "-c", "import time; time.sleep(30)"], str(tmp_path / "log.txt"),
                        timeout_s=0.5)
    assert run.returncode != 0
    assert run.wall_s < 10


def _result(side, steps, cpu, rss):
    spec = RunSpec(prompts_per_step=2, group=2, response_length=10, steps=len(steps) + 1)
    return RunResult(side=side, spec=spec, step_s=steps, cpu_s=cpu, gen_s=[s / 2 for s in steps],
                     tokens=[40.0] * len(steps), phases={"gen": [s / 2 for s in steps]}, peak_rss_mib=rss)


def test_report_pools_medians_and_takes_ratios(tmp_path):
    results = [_result("ours", [1.0, 2.0], [0.5, 0.5], 100), _result("trl", [2.0, 4.0, 3.0], [1.0, 1.0, 1.0], 300),
               _result("ours", [3.0], [0.7], 200)]
    ours, trl = pooled(results, "ours"), pooled(results, "trl")
    assert ours["step_s"] == 2.0 and trl["step_s"] == 3.0
    assert ours["peak_rss_mib"] == 200
    assert ratio(ours, trl, "steps_per_s") == pytest.approx(1.5)
    assert ratio(trl, ours, "cpu_s") == pytest.approx(2.0)
    assert "**1.50x**" in comparison_table(ours, trl) and "**2.00x**" in comparison_table(ours, trl)
    assert "| 64 |" in sweep_table([(64, ours, trl)], "response length")
    path = str(tmp_path / "plot.png")
    plot(path, ours, trl, [(64, ours, trl), (128, ours, trl)], [(8, ours, trl)], "t")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_failed_runs_are_left_out_of_the_pool():
    failed = _result("ours", [], [], 50)
    assert pooled([failed], "ours") == {}
