"""The exported checkpoint serves: a 2-rank FSDP2 checkpoint (trained one step, saved without HF weights) ->
``python -m verl.model_merger merge`` -> an HF folder that a plain ``vllm.LLM`` loads on CPU and answers greedily
token for token as transformers' ``generate`` does on the same folder.

The model's weights are first redrawn (test_vllm_rollout.redraw_weights) so that greedy text depends on the prompt;
the default tiny model repeats one token whatever it reads. vLLM runs in its own process (process-global state).
Runs only where vLLM is importable (scripts/test_vllm.sh); skips elsewhere.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/test_vllm.sh runs these tests in .venv-vllm")

import torch  # noqa: E402

from test_vllm_rollout import QUESTIONS, redraw_weights  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from merger_testlib import probe_ids, save_two_rank_checkpoint  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
NEW_TOKENS = 16
VLLM_GREEDY = """
import json, sys
from vllm import LLM, SamplingParams
model, prompts, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = LLM(model=model, dtype="float32", enforce_eager=True, max_model_len=512, kv_cache_memory_bytes=64 * 2**20,
          seed=0)
outs = llm.generate([{"prompt_token_ids": ids} for ids in prompts],
                    SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True))
print("RESULT " + json.dumps([list(o.outputs[0].token_ids) for o in outs]))
"""


@pytest.fixture(scope="module")
def merged_model(tiny_model_dir, tmp_path_factory) -> str:
    """global_step_1/actor of a 2-rank run on the redrawn tiny model, merged by the command line users run."""
    from transformers import AutoModelForCausalLM

    work = tmp_path_factory.mktemp("merged_for_vllm")
    start = str(work / "start")
    shutil.copytree(tiny_model_dir, start)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.load_state_dict(redraw_weights(model, seed=1))
    model.save_pretrained(start)
    step = str(work / "global_step_1")
    save_two_rank_checkpoint(start, model.config.vocab_size, step)
    target = str(work / "hf")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir",
                           step, "--target_dir", target], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return target


def prompt_ids(model_dir: str) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                          tokenize=True, return_dict=True)["input_ids"] for q in QUESTIONS]


def transformers_greedy(model_dir: str, prompts: list[list[int]]) -> list[list[int]]:
    """``generate`` with greedy decoding and no stop token, one prompt at a time (no padding)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    config = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=0, eos_token_id=None,
                              pad_token_id=0)
    out = []
    with torch.no_grad():
        for ids in prompts:
            full = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                  generation_config=config)
            out.append(full[0, len(ids):].tolist())
    return out


def vllm_greedy(model_dir: str, prompts: list[list[int]]) -> list[list[int]]:
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", VLLM_GREEDY, model_dir, json.dumps(prompts), str(NEW_TOKENS)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_merged_checkpoint_loads_in_vllm_and_answers_as_transformers(merged_model):
    from transformers import AutoModelForCausalLM

    step = os.path.join(os.path.dirname(merged_model), "global_step_1")
    assert not os.path.exists(os.path.join(step, "actor", "huggingface", "model.safetensors"))  # merger-made only
    model = AutoModelForCausalLM.from_pretrained(merged_model, dtype=torch.float32)
    with torch.no_grad():  # the trained model itself (as test_model_merger checks in the main environment)
        logits = model(input_ids=probe_ids(model.config.vocab_size)).logits
    torch.testing.assert_close(logits, torch.load(os.path.join(step, "trained_logits.pt")), rtol=0, atol=0)
    prompts = prompt_ids(merged_model)
    expected = transformers_greedy(merged_model, prompts)
    assert all(len(ids) == NEW_TOKENS for ids in expected)
    assert len({tuple(ids) for ids in expected}) == len(prompts)  # prompt-dependent answers, not one repeated token
    assert vllm_greedy(merged_model, prompts) == expected
