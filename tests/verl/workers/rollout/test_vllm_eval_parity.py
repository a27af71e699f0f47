"""recr1.eval's vLLM engine answers token for token as the training rollout does (greedy), on a tiny model whose
generation_config.json carries Qwen2.5-Instruct-like sampling defaults (a repetition penalty that would change the
answers) and two EOS ids. The vLLM variant of tests/recr1/test_eval.py's parity tests.

The engine runs in its own process (vLLM keeps process-global state that must not meet the other tests' engines).
Runs only where vLLM is importable (scripts/test_vllm.sh); skips elsewhere.
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/test_vllm.sh runs these tests in .venv-vllm")

from generation_testlib import CHAT_PROMPTS, training_rollout_greedy, with_generation_config  # noqa: E402

RESPONSE_LENGTH = 12
EVAL_VLLM = """
import json, sys
from recr1.generate import generate
model, prompts, length = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
out = generate(model, prompts, engine="vllm", max_new_tokens=length, device="cpu")
print("RESULT " + json.dumps({"token_ids": out.token_ids, "texts": out.texts}))
"""
ENGINE_DEFAULTS = """
import json, sys
from omegaconf import OmegaConf
from verl.workers.rollout.vllm_rollout import vLLMRollout
config = OmegaConf.create({"load_format": "auto", "dtype": "float32", "prompt_length": 64, "response_length": 8})
params = vLLMRollout(sys.argv[1], config, device="cpu").inference_engine.get_default_sampling_params()
print("RESULT " + json.dumps({k: getattr(params, k) for k in ("repetition_penalty", "temperature", "top_k", "top_p")}))
"""


def run_script(script: str, *args: str) -> dict:
    """Run ``script`` in a fresh interpreter; the JSON it prints after "RESULT "."""
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def eval_vllm(model_dir: str, prompts: list) -> dict:
    """``recr1.generate.generate(engine="vllm")``, the function ``python -m recr1.eval --engine vllm`` calls."""
    return run_script(EVAL_VLLM, model_dir, json.dumps(prompts), str(RESPONSE_LENGTH))


@pytest.mark.parametrize("second_eos", ["<|endoftext|>", "greedy"])
def test_vllm_engine_answers_exactly_as_the_training_rollout(tiny_model_dir, tmp_path, second_eos):
    """Second EOS id <|endoftext|> (never produced here: full-length answers under the penalty's temptation), or the
    token this random model repeats greedily (every answer ends at it)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    if second_eos == "greedy":
        second = training_rollout_greedy(tiny_model_dir, CHAT_PROMPTS[:1], 2, str(tmp_path))[0][0]
    else:
        second = tokenizer.convert_tokens_to_ids(second_eos)
    model = with_generation_config(tiny_model_dir, str(tmp_path / "model"), [tokenizer.eos_token_id, second])
    expected = training_rollout_greedy(model, CHAT_PROMPTS, RESPONSE_LENGTH, str(tmp_path))
    got = eval_vllm(model, CHAT_PROMPTS)
    assert got["token_ids"] == expected
    assert got["texts"] == tokenizer.batch_decode(expected, skip_special_tokens=True)
    if second_eos == "greedy":
        assert all(ids == [second] for ids in expected)


def test_rollout_engine_defaults_ignore_the_checkpoints_generation_config(tiny_model_dir, tmp_path):
    """The engine's own defaults (what vLLM applies wherever no SamplingParams are given) are vLLM's neutral ones,
    not the checkpoint's repetition penalty / temperature / top_k / top_p (engine arg generation_config="vllm")."""
    model = with_generation_config(tiny_model_dir, str(tmp_path / "model"), [1, 2])
    assert run_script(ENGINE_DEFAULTS, model) == {"repetition_penalty": 1.0, "temperature": 1.0, "top_k": 0,
                                                  "top_p": 1.0}  # fmt: skip
