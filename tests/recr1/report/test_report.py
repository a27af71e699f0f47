"""``python -m recr1.report``: plots and a summary from a real tiny run's metrics.jsonl (GRPO on the toy task,
validation before training and every 2 steps, KL loss on), and from synthetic files for the edge cases."""
import json
import os
import subprocess
import sys

import pytest

from recr1.report import build_report, read_metrics

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "verl", "trainer"))
from trainer_testlib import toy_overrides  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def report_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recr1.report", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory) -> str:
    """A 4-step GRPO run of the real trainer (its own process, hydra command line); returns its work folder, whose
    ckpt/ holds metrics.jsonl."""
    work = str(tmp_path_factory.mktemp("run"))
    overrides = toy_overrides(tiny_model_dir, work, **{
        "trainer.total_training_steps": 4, "trainer.val_before_train": True, "trainer.test_freq": 2,
        "trainer.save_freq": -1, "actor_rollout_ref.actor.use_kl_loss": True,
        "actor_rollout_ref.actor.kl_loss_coef": 0.1})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def test_report_of_a_real_run(tiny_run):
    proc = report_cli(tiny_run)  # the work folder: metrics.jsonl is found in its ckpt/
    assert proc.returncode == 0, proc.stderr
    out = os.path.join(tiny_run, "ckpt", "report")
    expected = {"reward.png", "val_ndcg.png", "validation.png", "response_length.png", "entropy.png", "kl.png",
                "timing.png", "summary.md"}
    # the toy reward has no ndcg (val_ndcg.png skipped) and no extras (reward_extras.png skipped)
    expected -= {"val_ndcg.png"}
    assert set(os.listdir(out)) == expected
    for name in expected - {"summary.md"}:
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG_MAGIC, name
    assert "skipped val_ndcg.png" in proc.stdout and "skipped reward_extras.png" in proc.stdout

    rows = read_metrics(os.path.join(tiny_run, "ckpt", "metrics.jsonl"))
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    score = [r["critic/score/mean"] for r in rows if "critic/score/mean" in r]
    val = [(r["step"], r["val-core/toy_say/reward/mean"]) for r in rows if "val-core/toy_say/reward/mean" in r]
    summary = open(os.path.join(out, "summary.md")).read()
    assert "4 training steps, 3 validations at 0, 2, 4" in summary
    total = sum(r["timing_s/step"] for r in rows if "timing_s/step" in r)
    assert f"training time: {total:.1f} s" in summary
    best = max(val, key=lambda p: p[1])
    assert (f"| val-core/toy_say/reward/mean | {val[0][1]:.4g} (0) | {val[-1][1]:.4g} (4) | "
            f"{best[1]:.4g} ({best[0]}) |") in summary
    assert f"| critic/score/mean | {score[0]:.4g} (1) | {score[-1]:.4g} (4) |" in summary
    assert "| actor/kl_loss |" in summary and "![KL](kl.png)" in summary


def write_lines(path, lines) -> str:
    with open(path, "w") as f:
        f.write("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def test_malformed_line_is_named_with_file_and_line(tmp_path):
    path = write_lines(tmp_path / "metrics.jsonl", [{"step": 1, "critic/score/mean": 0.1}, "",
                                                    '{"step": 2, "critic/score/mean": 0.2', {"step": 3}])
    proc = report_cli(str(tmp_path))
    assert proc.returncode == 2 and f"{path}:3: not valid JSON" in proc.stderr
    write_lines(tmp_path / "metrics.jsonl", [{"step": 1}, {"step": "two", "x": 1}])
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: 'step' must be an integer, got 'two'"):
        build_report(str(tmp_path))
    write_lines(tmp_path / "metrics.jsonl", [[1, 2]])
    with pytest.raises(ValueError, match=r"metrics.jsonl:1: expected a JSON object, got list"):
        build_report(str(tmp_path))


def test_missing_and_ambiguous_metrics_files_are_explained(tmp_path):
    proc = report_cli(str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "nowhere: no such file or folder" in proc.stderr
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl in .*empty"):
        build_report(str(tmp_path / "empty"))
    for name in ("a", "b"):
        os.makedirs(tmp_path / "two" / name)
        write_lines(tmp_path / "two" / name / "metrics.jsonl", [{"step": 1, "critic/score/mean": 0.5}])
    with pytest.raises(ValueError, match="several metrics.jsonl"):
        build_report(str(tmp_path / "two"))
    write_lines(tmp_path / "blank.jsonl", [""])
    with pytest.raises(ValueError, match="holds no metrics rows"):
        build_report(str(tmp_path / "blank.jsonl"))


def test_only_some_metrics_skips_the_rest_with_notes(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", [{"step": s, "critic/score/mean": 0.1 * s} for s in range(1, 4)])
    result = build_report(str(tmp_path), str(tmp_path / "out"))
    assert result["figures"] == ["reward.png"]
    assert sorted(os.listdir(tmp_path / "out")) == ["reward.png", "summary.md"]
    skipped = dict(result["skipped"])
    assert skipped["entropy.png"] == "nothing to plot: the run logged no actor/entropy"
    assert "timing_s/step" in skipped["timing.png"]
    summary = open(tmp_path / "out" / "summary.md").read()
    assert "| critic/score/mean | 0.1 (1) | 0.3 (3) | 0.3 (3) |" in summary
    assert "- entropy.png: nothing to plot" in summary and "training time" not in summary


def test_resumed_run_later_lines_win_and_validation_rows_merge(tmp_path):
    """A run that crashed after step 3 and resumed from its step-2 checkpoint logs steps 3.. again; validation before
    training logs step 2 a second time. NaN/inf (null in the file) and strings are no numbers."""
    write_lines(tmp_path / "metrics.jsonl", [
        {"step": 0, "val-core/a/ndcg@10": 0.1},
        {"step": 1, "critic/score/mean": 0.1, "timing_s/step": 1.0},
        {"step": 2, "critic/score/mean": 0.2, "timing_s/step": 1.0, "val-core/a/ndcg@10": 0.2},
        {"step": 3, "critic/score/mean": 0.9, "timing_s/step": 1.0, "actor/entropy": None},
        {"step": 2, "val-core/b/ndcg@10": 0.3},
        {"step": 3, "critic/score/mean": 0.3, "timing_s/step": 2.0, "note": "resumed"},
    ])
    rows = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert rows == [{"step": 0, "val-core/a/ndcg@10": 0.1},
                    {"step": 1, "critic/score/mean": 0.1, "timing_s/step": 1.0},
                    {"step": 2, "critic/score/mean": 0.2, "timing_s/step": 1.0, "val-core/a/ndcg@10": 0.2,
                     "val-core/b/ndcg@10": 0.3},
                    {"step": 3, "critic/score/mean": 0.3, "timing_s/step": 2.0, "actor/entropy": None}]
    result = build_report(str(tmp_path))
    assert "val_ndcg.png" in result["figures"] and "entropy.png" not in result["figures"]
    summary = open(result["summary"]).read()
    assert "training time: 4.0 s" in summary and "| critic/score/mean | 0.1 (1) | 0.3 (3) | 0.3 (3) |" in summary
    assert "| val-core/b/ndcg@10 | 0.3 (2) | 0.3 (2) | 0.3 (2) |" in summary


def test_reward_extras_by_pattern_with_families_and_reason_fractions(tmp_path):
    """Extras the task adds later (query statistics) appear without code changes; a family of three or more
    (query_op_*) shares a panel; a reason absent from a step counts 0 there."""
    from recr1.report.plots import reward_extra_panels

    rows = [{"step": 1, "reward/query_terms/mean": 5.0, "reward/query_op_and/mean": 0.1,
             "reward/query_op_or/mean": 0.0, "reward/query_op_not/mean": 0.2, "reward/k/mean": 1000.0,
             "reward/reason/hit": 0.75, "reward/reason/miss": 0.25},
            {"step": 2, "reward/query_terms/mean": 6.0, "reward/query_op_and/mean": 0.3,
             "reward/query_op_or/mean": 0.1, "reward/query_op_not/mean": 0.0, "reward/k/mean": 1000.0,
             "reward/reason/hit": 1.0}]
    panels = {p.title: {line.label: line.points for line in p.lines} for p in reward_extra_panels(rows)}
    assert panels == {
        "reward/query_op_*/mean": {"and": [[1, 0.1], [2, 0.3]], "not": [[1, 0.2], [2, 0.0]],
                                   "or": [[1, 0.0], [2, 0.1]]},
        "reward/query_terms/mean": {"query_terms": [[1, 5.0], [2, 6.0]]},
        "reward/reason/* (fraction of samples)": {"hit": [[1, 0.75], [2, 1.0]], "miss": [[1, 0.25], [2, 0.0]]},
    }
    write_lines(tmp_path / "metrics.jsonl", rows)
    assert "reward_extras.png" in build_report(str(tmp_path))["figures"]


def test_sft_run_gets_its_loss_plot_and_the_lowest_loss_as_best(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", [
        {"step": 1, "train/loss": 8.0, "train/lr": 0.0, "timing_s/step": 0.5},
        {"step": 2, "train/loss": 6.0, "train/lr": 1e-4, "timing_s/step": 0.5, "val/loss": 6.5},
        {"step": 3, "train/loss": 7.0, "train/lr": 1e-4, "timing_s/step": 0.5, "val/loss": 6.8}])
    result = build_report(str(tmp_path))
    assert result["figures"] == ["loss.png", "timing.png"]
    summary = open(result["summary"]).read()
    assert "| train/loss | 8 (1) | 7 (3) | 6 (2) |" in summary
    assert "| val/loss | 6.5 (2) | 6.8 (3) | 6.5 (2) |" in summary
