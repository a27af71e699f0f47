"""HF vs vLLM rollout throughput, measured the way the trainer generates (FSDP2 actor, sampled responses).

    python scripts/bench/rollout_throughput.py --engines hf vllm            # vLLM needs .venv-vllm (test_vllm.sh)
    python scripts/bench/rollout_throughput.py --model-dir ~/models/Qwen2.5-0.5B-Instruct --device cuda --dtype bf16

By default a small Qwen2 (4 layers, hidden 256, head_dim 64) is built from verl.utils.tiny_model. Both engines get
the same left-padded chat prompts and sampling settings; throughput counts generated tokens (response_mask) per
second of generate_sequences, the median over --repeats timed calls after one warm-up call. vLLM's weight push is
timed separately (it happens once per training step).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from verl.protocol import DataProto  # noqa: E402

PROMPTS = [
    "I need comfortable shoes for long runs on the road; my old pair hurt my feet.",
    "Looking for a gift for my sister who loves hiking and camping in the mountains.",
    "My kitchen needs a good pan that works on an induction stove and is easy to clean.",
    "Can you find headphones that block noise on long flights and last all day?",
    "I want a cheap and light bottle I can take to the gym every morning.",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    p.add_argument("--model-dir", default=None, help="an HF model directory (default: build a small Qwen2)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32, help="rows per generate_sequences call")
    p.add_argument("--response-length", type=int, default=48)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="vLLM dtype (default float32 on cpu, bfloat16 on cuda)")
    return p.parse_args(argv)


def rollout_config(args) -> OmegaConf:
    return OmegaConf.create(
        {
            "name": "vllm", "temperature": args.temperature, "top_k": -1, "top_p": 1.0, "do_sample": True, "n": 1,
            "prompt_length": 128, "response_length": args.response_length,
            "dtype": args.dtype or ("float32" if args.device == "cpu" else "bfloat16"),
            "gpu_memory_utilization": 0.3, "ignore_eos": False, "enforce_eager": True, "free_cache_engine": True,
            "load_format": "dummy", "tensor_model_parallel_size": 1, "max_num_batched_tokens": 8192,
            "max_model_len": None, "max_num_seqs": max(args.batch_size, 16), "enable_chunked_prefill": True,
            "disable_log_stats": True, "micro_batch_size": None, "engine_kwargs": {},
            "val_kwargs": {"top_k": -1, "top_p": 1.0, "temperature": 0, "n": 1, "do_sample": False},
        }
    )


def make_prompts(tokenizer, batch_size: int) -> DataProto:
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], tokenize=False, add_generation_prompt=True
        )
        for i in range(batch_size)
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    mask = enc["attention_mask"]
    return DataProto.from_dict(
        tensors={
            "input_ids": enc["input_ids"],
            "attention_mask": mask,
            "position_ids": torch.clamp(torch.cumsum(mask, dim=-1) - 1, min=0),
        },
        meta_info={"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
    )


def time_engine(name: str, rollout, prompts: DataProto, repeats: int) -> dict:
    """Median generated tokens/s over ``repeats`` calls after one warm-up."""
    rollout.generate_sequences(prompts)
    rates, seconds, syncs = [], [], []
    for i in range(repeats):
        start = time.perf_counter()
        out = rollout.generate_sequences(prompts)
        elapsed = time.perf_counter() - start
        metrics = out.meta_info["metrics"]
        sync = float(metrics.get("timing_s/sync_weights", 0.0))
        gen = elapsed - sync
        tokens = int(out.batch["response_mask"].sum())
        rates.append(tokens / gen)
        seconds.append(gen)
        syncs.append(sync)
        print(f"[bench] {name} call {i + 1}/{repeats}: {tokens} tokens in {gen:.2f}s (+ weight push {sync:.2f}s)",
              flush=True)
    median = statistics.median
    return {"tokens_per_s": median(rates), "gen_s": median(seconds), "sync_s": median(syncs)}


def main(argv=None) -> int:
    args = parse_args(argv)
    from transformers import AutoTokenizer

    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.sharding import build_fsdp_causal_lm

    model_dir = args.model_dir
    if model_dir is None:
        from verl.utils.tiny_model import save_tiny_model

        model_dir = save_tiny_model(tempfile.mkdtemp(prefix="bench_model_"), layers=args.layers, hidden=args.hidden,
                                    heads=args.heads, seed=0)
    model_dir = os.path.expanduser(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    mesh = build_device_mesh(args.device)
    model_cfg = OmegaConf.create({"path": model_dir, "override_config": {}, "enable_gradient_checkpointing": False})
    actor = build_fsdp_causal_lm(model_cfg, None, mesh, args.device, trainable=True)
    n_params = sum(p.numel() for p in actor.parameters())
    config = rollout_config(args)
    prompts = make_prompts(tokenizer, args.batch_size)
    print(f"[bench] model {model_dir} ({n_params / 1e6:.2f}M params), device {args.device}, torch threads "
          f"{torch.get_num_threads()}, batch {args.batch_size} x {args.response_length} new tokens, "
          f"prompt width {prompts.batch['input_ids'].shape[1]}", flush=True)

    results = {}
    if "hf" in args.engines:  # first: vLLM changes process-wide CPU settings when it starts
        from verl.workers.rollout.hf_rollout import HFRollout

        results["hf"] = time_engine("hf", HFRollout(actor, config), prompts, args.repeats)
    if "vllm" in args.engines:
        from verl.workers.rollout.vllm_rollout import build_vllm_rollout

        start = time.perf_counter()
        rollout = build_vllm_rollout(actor, model_dir, config, tokenizer=tokenizer, device=args.device)
        print(f"[bench] vllm engine built in {time.perf_counter() - start:.1f}s", flush=True)
        results["vllm"] = time_engine("vllm", rollout, prompts, args.repeats)

    print("\nengine  tokens/s  generate_s  weight_push_s")
    for name, r in results.items():
        print(f"{name:<6}  {r['tokens_per_s']:8.1f}  {r['gen_s']:10.2f}  {r['sync_s']:13.2f}")
    if len(results) == 2:
        print(f"vllm / hf throughput: {results['vllm']['tokens_per_s'] / results['hf']['tokens_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
