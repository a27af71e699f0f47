"""scripts/eval/general_abilities.sh -> recr1.general_abilities -> lm-eval's HF backend, for real, offline: the
tiny model (base) and another tiny model (checkpoint) on the recr1_smoke tasks shipped in the repository; the
multiple-choice accuracy in each column equals the one computed here from the models' own log-likelihoods."""
import json
import os
import subprocess

import pytest
import torch

pytest.importorskip("lm_eval", reason="lm-eval is in the 'eval' extra (pip install -e .[eval])")

from recr1.general_abilities import TaskError, check_tasks  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TASKS_DIR = os.path.join(ROOT, "scripts", "eval", "lm_eval_tasks")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}


def multiple_choice_accuracy(model_dir: str) -> float:
    """recr1_smoke_mc's accuracy by hand: the choice whose ' <choice>' after the question has the largest summed
    log-probability."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with open(os.path.join(TASKS_DIR, "recr1_smoke", "multiple_choice.jsonl")) as f:
        docs = [json.loads(line) for line in f]
    hits = 0
    for doc in docs:
        context = tokenizer(f"Question: {doc['question']}\nAnswer:")["input_ids"]
        scores = []
        for choice in doc["choices"]:
            ids = tokenizer(f"Question: {doc['question']}\nAnswer: {choice}")["input_ids"]
            with torch.no_grad():
                logp = model(torch.tensor([ids])).logits.log_softmax(-1)[0]
            scores.append(sum(logp[i - 1, ids[i]].item() for i in range(len(context), len(ids))))
        hits += scores.index(max(scores)) == doc["answer"]
    return hits / len(docs)


@pytest.fixture(scope="module")
def other_tiny_model(tmp_path_factory) -> str:
    from verl.utils.tiny_model import save_tiny_model

    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_seed3")), layers=2, hidden=64, heads=2, seed=3)


def test_base_and_checkpoint_side_by_side_on_the_shipped_task(tiny_model_dir, other_tiny_model, tmp_path):
    expected = {"base": multiple_choice_accuracy(tiny_model_dir),
                "checkpoint": multiple_choice_accuracy(other_tiny_model)}
    assert expected["base"] != expected["checkpoint"], "the two tiny models answer alike: pick another seed"
    out = tmp_path / "out"
    env = {**os.environ, **OFFLINE, "TASKS": "recr1_smoke", "BATCH_SIZE": "4", "DEVICE": "cpu", "OUT_DIR": str(out)}
    proc = subprocess.run(["bash", "scripts/eval/general_abilities.sh", other_tiny_model, tiny_model_dir], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| task | metric | n | base | checkpoint | checkpoint - base |" in proc.stdout

    result = json.load(open(out / "general_abilities.json"))
    assert result["models"] == {"base": tiny_model_dir, "checkpoint": other_tiny_model}
    rows = {(row["task"], row["metric"]): row for row in result["table"]}
    assert set(rows) == {("recr1_smoke", "acc"), ("recr1_smoke", "exact_match (strip)")}  # the group, not its tasks
    acc = rows["recr1_smoke", "acc"]
    assert acc["n"] == 12 and rows["recr1_smoke", "exact_match (strip)"]["n"] == 10
    assert acc["base"] == pytest.approx(expected["base"]) and acc["checkpoint"] == pytest.approx(expected["checkpoint"])
    assert acc["delta"] == pytest.approx(expected["checkpoint"] - expected["base"])
    # both tasks ran on both models (the subtasks stay in the json)
    for column in ("base", "checkpoint"):
        run = result["runs"][column]["results"]
        assert run["recr1_smoke_mc"]["acc,none"] == pytest.approx(expected[column])
        assert 0.0 <= run["recr1_smoke_gen"]["exact_match,strip"] <= 1.0
    table = open(out / "general_abilities.md").read()
    assert f"| recr1_smoke | acc | 12 | {expected['base']:.4f} ± " in table


@pytest.fixture(scope="module")
def task_manager():
    """The shipped tasks and tests/recr1/lm_eval_tasks (a code-running task and a group holding it), without
    lm-eval's own 14k tasks (indexing those takes 5-20 s; the script test below goes through them)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[TASKS_DIR, os.path.join(ROOT, "tests", "recr1", "lm_eval_tasks")],
                       include_defaults=False)


def test_code_execution_tasks_need_explicit_consent(task_manager):
    """A task whose config says unsafe_code, alone or inside a group, stops the run unless allowed."""
    for tasks in (["recr1_smoke", "recr1_test_runs_code"], ["recr1_test_code_group"]):
        with pytest.raises(TaskError, match=rf"{tasks[-1]} execute\(s\) the code the model writes.*"
                                            r"--allow-code-execution.*ALLOW_CODE_EVAL=1"):
            check_tasks(task_manager, tasks, allow_code_execution=False)
        assert check_tasks(task_manager, tasks, allow_code_execution=True) == [tasks[-1]]
    assert check_tasks(task_manager, ["recr1_smoke"], allow_code_execution=False) == []


def test_unknown_task_is_named_with_close_matches(task_manager):
    with pytest.raises(TaskError, match=r"unknown lm-eval task\(s\): 'recr1_smoke_mcq' \(did you mean recr1_smoke_mc"):
        check_tasks(task_manager, ["recr1_smoke", "recr1_smoke_mcq"], allow_code_execution=False)


def test_the_default_tasks_stop_before_loading_a_model_without_consent(tmp_path):
    """The default list holds lm-eval's humaneval: refused up front (the model path does not even exist)."""
    env = {**os.environ, **OFFLINE}
    proc = subprocess.run(["bash", "scripts/eval/general_abilities.sh", str(tmp_path / "no_model")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "humaneval execute(s) the code the model writes" in proc.stderr
    assert not (tmp_path / "no_model").exists()
