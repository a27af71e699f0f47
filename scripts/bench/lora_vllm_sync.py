"""LoRA actor -> vLLM: push merged weights at every sync, or load the adapter through vLLM's LoRA support?

    .venv-vllm/bin/python scripts/bench/lora_vllm_sync.py          # both ways, two model sizes, ratios printed

merged:  the engine runs a plain model; each sync streams every weight with the adapters merged (W + alpha/r * B @ A,
         ``vllm_weight_sync.iter_sync_weights``) through ``reload_weights`` (what the trainer does).
adapter: the engine is built with ``enable_lora`` on the real base weights; each sync writes the adapter as a peft
         folder and registers it under a new id (``add_lora``, the previous one removed); generation passes the
         ``LoRARequest``.
Both: the same LoRA actor (random A and B, so the adapter matters), greedy generation of the same prompts; reported
are the median sync time over --syncs syncs (adapters redrawn before each), the median generate time over --repeats
calls, the bytes each sync moves, and whether both ways produced the same tokens. Each (way, size) runs in its own
process: vLLM keeps process-global state.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "verl", "workers", "rollout"))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

SIZES = {"tiny": dict(layers=2, hidden=64, heads=2), "bigger": dict(layers=4, hidden=512, heads=8)}
PROMPTS = [
    "I need comfortable shoes for long runs on the road; my old pair hurt my feet.",
    "Looking for a gift for my sister who loves hiking and camping in the mountains.",
    "My kitchen needs a good pan that works on an induction stove and is easy to clean.",
    "Can you find headphones that block noise on long flights and last all day?",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--syncs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--response-length", type=int, default=32)
    p.add_argument("--child", nargs=3, metavar=("WAY", "SIZE", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _actor(model_dir: str, rank: int):
    from omegaconf import OmegaConf

    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.sharding import build_fsdp_causal_lm

    cfg = OmegaConf.create({"path": model_dir, "lora_rank": rank, "lora_alpha": 2 * rank, "target_modules": "all-linear"})
    return build_fsdp_causal_lm(cfg, None, build_device_mesh("cpu"), "cpu", trainable=True)


def _draw(module, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def child(way: str, size: str, out: str, args) -> None:
    """Measure one way on one model size; write a JSON result to ``out``."""
    import torch
    from transformers import AutoTokenizer

    from test_vllm_rollout import make_prompts, rollout_config
    from verl.utils.tiny_model import save_tiny_model

    torch.manual_seed(0)
    model_dir = save_tiny_model(tempfile.mkdtemp(prefix=f"lora_bench_{size}_"), seed=0, **SIZES[size])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    actor = _actor(model_dir, args.rank)
    prompts = make_prompts(tokenizer, (PROMPTS * args.batch_size)[: args.batch_size])
    prompts.meta_info.update({"do_sample": False, "response_length": args.response_length})
    config = rollout_config(response_length=args.response_length, max_num_seqs=args.batch_size)
    sync_s, gen_s, sync_bytes = [], [], 0
    if way == "merged":
        from verl.workers.rollout.vllm_rollout import build_vllm_rollout

        rollout = build_vllm_rollout(actor, model_dir, config, tokenizer=tokenizer, device="cpu")
        manager = rollout.sharding_manager
        for i in range(args.syncs + 1):
            _draw(actor, seed=i)
            manager.sync_weights()
            sync_s.append(manager.last_sync_seconds)
            sync_bytes = manager.last_sync_bytes

        def generate():
            return rollout.rollout.generate_sequences(prompts).batch["responses"]
    else:
        from vllm.lora.request import LoRARequest

        from verl.utils.checkpoint.lora_weights import adapter_state, write_peft_adapter
        from verl.workers.rollout.vllm_rollout import vLLMRollout

        engine_cfg = rollout_config(response_length=args.response_length, max_num_seqs=args.batch_size,
                                    load_format="auto",
                                    engine_kwargs={"enable_lora": True, "max_lora_rank": args.rank, "max_loras": 1})
        rollout = vLLMRollout(model_dir, engine_cfg, tokenizer=tokenizer, device="cpu")
        llm = rollout.inference_engine
        folder = tempfile.mkdtemp(prefix="lora_bench_adapter_")
        request = None
        for i in range(args.syncs + 1):
            _draw(actor, seed=i)
            start = time.perf_counter()
            path = os.path.join(folder, f"sync{i}")
            state = adapter_state((n, p.detach()) for n, p in actor.named_parameters())
            write_peft_adapter(path, actor.peft_config["default"], state)
            if request is not None:
                llm.llm_engine.remove_lora(request.lora_int_id)
            request = LoRARequest(f"sync{i}", i + 1, path)
            llm.llm_engine.add_lora(request)
            sync_s.append(time.perf_counter() - start)
            sync_bytes = sum(t.numel() * t.element_size() for t in state.values())
        params = rollout._sampling_params(prompts.meta_info, args.response_length, [tokenizer.eos_token_id])
        from verl.workers.rollout.vllm_rollout import pad_responses, unpad_prompts

        def generate():
            ids = unpad_prompts(prompts.batch["input_ids"], prompts.batch["attention_mask"])
            outs = llm.generate([{"prompt_token_ids": x} for x in ids], sampling_params=params,
                                lora_request=request, use_tqdm=False)
            return pad_responses([o.outputs[0].token_ids for o in outs], args.response_length,
                                 [tokenizer.eos_token_id], tokenizer.pad_token_id)[0]
    generate()  # warm-up
    tokens = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        tokens = generate()
        gen_s.append(time.perf_counter() - start)
    params_total = sum(p.numel() for p in actor.parameters())
    with open(out, "w") as f:
        json.dump({"sync_s": statistics.median(sync_s[1:]), "gen_s": statistics.median(gen_s),
                   "sync_mb": sync_bytes / 1e6, "params_m": params_total / 1e6, "tokens": tokens.tolist()}, f)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child(*args.child, args)
        return
    results = {}
    for size in args.sizes:
        for way in ("merged", "adapter"):
            out = tempfile.mktemp(suffix=".json")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", way, size, out,
                   "--rank", str(args.rank), "--syncs", str(args.syncs), "--repeats", str(args.repeats),
                   "--batch-size", str(args.batch_size), "--response-length", str(args.response_length)]
            print(f"[lora-vllm-bench] {size} / {way} ...", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                results[(size, way)] = json.load(f)
    print(f"\nLoRA rank {args.rank}, {args.batch_size} prompts x {args.response_length} greedy tokens, CPU "
          f"(median of {args.syncs} syncs / {args.repeats} generate calls)\n")
    print("| model | params (M) | merged sync s | adapter sync s | adapter/merged sync | merged MB/sync | "
          "adapter MB/sync | merged gen s | adapter gen s | adapter/merged gen | same tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        m, a = results[(size, "merged")], results[(size, "adapter")]
        print(f"| {size} {SIZES[size]} | {m['params_m']:.2f} | {m['sync_s']:.3f} | {a['sync_s']:.3f} | "
              f"{a['sync_s'] / m['sync_s']:.3f}x | {m['sync_mb']:.2f} | {a['sync_mb']:.2f} | {m['gen_s']:.3f} | "
              f"{a['gen_s']:.3f} | {a['gen_s'] / m['gen_s']:.2f}x | {m['tokens'] == a['tokens']} |")


if __name__ == "__main__":
    main()
