"""The across-seeds summary of finished demo runs."""
import json
import os

import pytest

from recr1.demo.seeds import load_runs, main, summarize


def write_run(folder, seed, raw, sft, rl, seconds=750.0):
    os.makedirs(folder, exist_ok=True)
    test = {m: {"overall": {"n": 10, "ndcg@100": v}} for m, v in (("raw_request", raw), ("sft", sft), ("rl", rl))}
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"seed": seed, "test": test, "total_seconds": seconds}, f)
    return str(folder)


def test_margins_are_compared_with_the_spread_of_rl(tmp_path):
    runs = [write_run(tmp_path / f"s{s}", s, 0.4, sft, rl) for s, sft, rl in ((1, 0.3, 0.8), (2, 0.2, 0.6), (3, 0.25, 0.7))]
    summary = summarize(load_runs(runs))
    assert summary["seeds"] == [1, 2, 3]
    assert summary["mean"]["rl"] == pytest.approx(0.7) and summary["rl_spread"] == pytest.approx(0.2)
    assert summary["margin"]["raw_request"] == pytest.approx(0.3)
    assert summary["margin_exceeds_spread"] == {"raw_request": True, "sft": True}
    assert summary["rl_over_raw_request"]["min"] == pytest.approx(1.5)
    assert summary["minutes"] == [12.5, 12.5, 12.5]


def test_a_margin_within_the_spread_is_reported_as_such(tmp_path, capsys):
    runs = [write_run(tmp_path / "a", 1, 0.4, 0.3, 0.9), write_run(tmp_path / "b", 2, 0.4, 0.3, 0.35)]
    assert main([*runs, "--out", str(tmp_path / "summary")]) == 0
    printed = capsys.readouterr().out
    assert "RL - raw_request: +0.225 NDCG@100 (mean), NOT larger than RL's spread across seeds (0.550)" in printed
    assert open(tmp_path / "summary" / "seeds.md").read().strip() == printed.strip()
    assert json.load(open(tmp_path / "summary" / "seeds.json"))["margin_exceeds_spread"]["sft"] is False


def test_an_unfinished_run_is_named(tmp_path, capsys):
    done = write_run(tmp_path / "done", 1, 0.4, 0.3, 0.8)
    assert main([done, str(tmp_path / "still-running")]) == 2
    assert "still-running/results.json not found" in capsys.readouterr().err
