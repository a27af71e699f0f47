"""The GPU check's checks (run by scripts/gpu_check.sh, which installs what a bare GPU image lacks first).

1. offload   3 GRPO steps through ``python -m verl.trainer.main_ppo`` (in-process backend, HF rollout, world size 1:
             FSDP2 on nccl) in bf16 with actor param + optimizer offload, gradient checkpointing, a KL loss against a
             param-offloaded reference; checkpoint at step 3 with the HF export; then a resumed run that loads it
             and trains step 4.
2. export    the step-3 HF export loads in transformers (in the training dtype) and gives the same logits as the
             sharded checkpoint merged by ``python -m verl.model_merger``.
3. size      2 GRPO steps of a model with Qwen2.5-0.5B's shapes (random weights, built here) with the Rec-R1 recipe's
             memory settings: generation tokens/s, step time, peak GPU memory.

Prints one PASS / FAIL line per check and writes every figure to ``--summary`` (JSON).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "verl", "trainer"))

from trainer_testlib import toy_overrides  # noqa: E402

# Qwen2.5-0.5B-Instruct's config.json shapes (weights random: no hub here).
QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                  tie_word_embeddings=True, rms_norm_eps=1e-6)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            tie_word_embeddings=True)
SHAPES = {"qwen2.5-0.5b": QWEN25_05B, "tiny": TINY}

# Everything the Rec-R1 recipe offloads, plus the actor's parameters (the README's advice for larger models).
FULL_OFFLOAD = {"actor_rollout_ref.actor.fsdp_config.param_offload": True,
                "actor_rollout_ref.actor.fsdp_config.optimizer_offload": True,
                "actor_rollout_ref.ref.fsdp_config.param_offload": True,
                "actor_rollout_ref.actor.use_kl_loss": True, "actor_rollout_ref.actor.kl_loss_coef": 0.001,
                "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
                "actor_rollout_ref.model.enable_gradient_checkpointing": True}
RECIPE_MEMORY = {**FULL_OFFLOAD, "actor_rollout_ref.actor.fsdp_config.param_offload": False}

def build_model(out_dir: str, shape: str, base_dir: str) -> str:
    """A Qwen2 with ``SHAPES[shape]`` and random weights, with the tiny model's tokenizer (ids fit any vocab)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    dims = dict(SHAPES[shape])
    dims["vocab_size"] = max(dims.get("vocab_size", 0), len(tokenizer))
    config = Qwen2Config(**dims, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, use_sliding_window=False)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def run_main_ppo(overrides: list[str], log_path: str, timeout_s: float) -> tuple[int, float]:
    """``python -m verl.trainer.main_ppo OVERRIDES`` with its output in ``log_path``; (exit code, seconds)."""
    start = time.time()
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", *overrides], stdout=log,
                                stderr=subprocess.STDOUT, timeout=timeout_s, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.time() - start


def train_rows(metrics_path: str) -> list[dict]:
    rows = [json.loads(line) for line in open(metrics_path)]
    return [r for r in rows if "timing_s/step" in r]


def tail(path: str, lines: int = 40) -> str:
    with open(path) as f:
        return "".join(f.readlines()[-lines:])


def check(results: dict, name: str, fn) -> None:
    """Run one check; record PASS with its figures or FAIL with the reason."""
    start = time.time()
    try:
        figures = fn() or {}
        results[name] = {"status": "PASS", "seconds": round(time.time() - start, 1), **figures}
    except Exception as e:  # every failure is reported, and the next check still runs
        results[name] = {"status": "FAIL", "seconds": round(time.time() - start, 1), "error": f"{type(e).__name__}: {e}"}
    line = {k: v for k, v in results[name].items() if k not in ("status", "log_tail")}
    print(f"{results[name]['status']}  {name}: {json.dumps(line)}", flush=True)
    if results[name]["status"] == "FAIL" and "log_tail" in results[name]:
        print(results[name]["log_tail"], flush=True)


def offload_check(args, model_dir: str, work: str) -> dict:
    run_dir = os.path.join(work, "offload")
    base = toy_overrides(model_dir, run_dir, **FULL_OFFLOAD, **{
        "trainer.device": args.device, "trainer.save_freq": 3, "trainer.test_freq": 3, "trainer.val_before_train": True,
        "trainer.total_epochs": 10, "actor_rollout_ref.actor.checkpoint.save_contents": "[model,optimizer,extra,hf_model]"})
    figures = {}
    for steps, label in ((3, "train"), (4, "resume")):
        log = os.path.join(run_dir, f"{label}.log")
        rc, seconds = run_main_ppo(base + [f"trainer.total_training_steps={steps}"], log, args.step_timeout)
        figures[f"{label}_seconds"] = round(seconds, 1)
        if rc != 0:
            raise RuntimeError(f"{label} run exited {rc}; log {log}:\n{tail(log)}")
    rows = train_rows(os.path.join(run_dir, "ckpt", "metrics.jsonl"))
    steps = [r["step"] for r in rows]
    if steps != [1, 2, 3, 4]:
        raise AssertionError(f"trained steps {steps}, expected [1, 2, 3, 4] (3, then 1 more after resuming)")
    if "resuming from" not in open(os.path.join(run_dir, "resume.log")).read():
        raise AssertionError("the second run did not resume from the step-3 checkpoint")
    for r in rows:
        for key in ("actor/pg_loss", "actor/grad_norm", "actor/kl_loss"):
            if key in r and not math.isfinite(r[key]):
                raise AssertionError(f"step {r['step']}: {key}={r[key]}")
    last = rows[-1]
    keep = ("actor/pg_loss", "actor/grad_norm", "actor/kl_loss", "critic/score/mean", "timing_s/step",
            "perf/max_memory_allocated_gb", "perf/max_memory_reserved_gb", "perf/cpu_max_rss_gb")
    figures.update({k: round(last[k], 4) for k in keep if k in last})
    return figures


def export_check(args, work: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    actor = os.path.join(work, "offload", "ckpt", "global_step_3", "actor")
    exported = os.path.join(actor, "huggingface")
    merged = os.path.join(work, "merged")
    log = os.path.join(work, "merge.log")
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir",
                             actor, "--target_dir", merged], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc != 0:
        raise RuntimeError(f"model_merger exited {rc}:\n{tail(log)}")
    device = torch.device(args.device)
    a = AutoModelForCausalLM.from_pretrained(exported, dtype="auto").to(device).eval()
    b = AutoModelForCausalLM.from_pretrained(merged, dtype="auto").to(device).eval()
    ids = torch.arange(3, 19, device=device).unsqueeze(0)
    with torch.no_grad():
        la, lb = a(ids).logits.float(), b(ids).logits.float()
    diff = (la - lb).abs().max().item()
    if diff > 1e-2:
        raise AssertionError(f"HF export and merged checkpoint differ: max |logit diff| {diff}")
    if args.device == "cuda" and a.dtype != torch.bfloat16:
        raise AssertionError(f"the HF export is {a.dtype}; bf16 training should export bf16")
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(exported, "*")))
    return {"export_dtype": str(next(a.parameters()).dtype), "max_logit_diff": diff, "files": files}


def size_check(args, base_model: str, work: str) -> dict:
    run_dir = os.path.join(work, "size")
    model_dir = build_model(os.path.join(work, f"model-{args.shape}"), args.shape, base_model)
    response = args.response_length
    overrides = toy_overrides(model_dir, run_dir, train_rows=64, **RECIPE_MEMORY, **{
        "trainer.device": args.device, "trainer.total_training_steps": 2, "trainer.save_freq": -1,
        "data.train_batch_size": 8, "data.max_response_length": response, "actor_rollout_ref.rollout.n": 8,
        "actor_rollout_ref.actor.ppo_mini_batch_size": 4, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 8,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 16,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": 16, "actor_rollout_ref.actor.optim.lr": 1e-6,
        "actor_rollout_ref.rollout.temperature": 0.6, "actor_rollout_ref.rollout.top_p": 0.95})
    log = os.path.join(run_dir, "train.log")
    rc, seconds = run_main_ppo(overrides, log, args.step_timeout)
    if rc != 0:
        raise RuntimeError(f"exited {rc}; log {log}:\n{tail(log)}")
    last = train_rows(os.path.join(run_dir, "ckpt", "metrics.jsonl"))[-1]
    tokens = last["response_length/mean"] * 64
    return {"shape": args.shape, "responses": 64, "response_length_mean": round(last["response_length/mean"], 1),
            "gen_tokens_per_s": round(tokens / last["timing_s/gen"], 1), "step_s": round(last["timing_s/step"], 2),
            "update_actor_s": round(last.get("timing_s/update_actor", float("nan")), 2),
            "throughput_tokens_per_s": round(last.get("perf/throughput", float("nan")), 1),
            **{k: round(v, 3) for k, v in last.items() if "memory" in k or "rss" in k}, "run_seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", required=True)
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES))
    parser.add_argument("--response-length", type=int, default=128)
    parser.add_argument("--step-timeout", type=float, default=240.0, help="seconds per main_ppo run")
    parser.add_argument("--summary", default=None, help="JSON file for every figure (default WORK/summary.json)")
    args = parser.parse_args()

    import torch
    import transformers

    from verl.utils.tiny_model import save_tiny_model

    results: dict = {"env": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "device": args.device}}
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("FAIL  no CUDA device visible", flush=True)
            return 1
        results["env"].update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                              bf16=torch.cuda.is_bf16_supported(), nccl=torch.distributed.is_nccl_available())
    print(f"== {json.dumps(results['env'])}", flush=True)
    os.makedirs(args.work, exist_ok=True)
    # head_dim 32 (hidden 128 / 4 heads) as vLLM needs; 4 layers so FSDP2 wraps several decoder layers
    tiny = save_tiny_model(os.path.join(args.work, "model"), layers=4, hidden=128, heads=4, seed=0)
    check(results, "offload", lambda: offload_check(args, tiny, args.work))
    if results["offload"]["status"] == "PASS":
        check(results, "export", lambda: export_check(args, args.work))
    check(results, "size", lambda: size_check(args, tiny, args.work))
    summary = args.summary or os.path.join(args.work, "summary.json")
    with open(summary, "w") as f:
        json.dump(results, f, indent=2)
    passed = sum(1 for r in results.values() if r.get("status") == "PASS")
    failed = sum(1 for r in results.values() if r.get("status") == "FAIL")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
