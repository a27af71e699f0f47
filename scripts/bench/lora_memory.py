"""Memory of actor + reference: LoRA actor (lora_rank > 0: one model, the reference = adapters off) vs full fine-tuning
(trainable fp32 actor + a frozen reference copy), on the same model, through the real worker.

    .venv/bin/python scripts/bench/lora_memory.py     # tiny and bigger Qwen2, rank 16: table, ratios, lora_memory.png
    .venv/bin/python scripts/bench/lora_memory.py --sizes bigger --rank 64

Each (size, mode) runs in its own process: an ActorRolloutRefWorker (role actor_rollout_ref, CPU, one rank) is
built, then one PPO step (old log-probs, reference log-probs, one update with the KL loss) runs on a synthetic batch.
Counted: parameter bytes of every model the worker holds (actor + reference copy when there is one), gradient bytes
(one per trainable parameter, held during backward), optimizer state bytes (Adam moments after the step), and the
process's peak RSS (its RSS right after the imports is printed too, so the model's share can be told apart).
The last columns project the same counts to a GPU run (bf16 compute dtype: the reference and LoRA's frozen base in
bf16, trainable weights, gradients and Adam moments in fp32) - arithmetic on the measured parameter counts, not a
measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "verl", "workers"))

SIZES = {"tiny": dict(layers=2, hidden=64, heads=2), "bigger": dict(layers=4, hidden=768, heads=12)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--plot", default=os.path.join(ROOT, "scripts", "bench", "lora_memory.png"),
                   help="PNG of the byte counts next to the table (empty: none)")
    p.add_argument("--child", nargs=3, metavar=("MODE", "SIZE", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def child(mode: str, size: str, out: str, rank: int) -> None:
    """Build the worker for ``mode`` (lora | full) on ``size``, run one PPO step, write the counts to ``out``."""
    import torch

    from verl.protocol import DataProto
    from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool
    from verl.single_controller.local import LocalWorkerGroup
    from verl.utils.fsdp_utils import ensure_process_group
    from verl.utils.tiny_model import save_tiny_model
    from verl.workers.fsdp_workers import ActorRolloutRefWorker
    from test_fsdp_workers import actor_rollout_ref_config
    from workers_testlib import ppo_batch

    torch.set_num_threads(1)
    ensure_process_group("cpu")
    model_dir = save_tiny_model(tempfile.mkdtemp(prefix=f"lora_mem_{size}_"), seed=0, **SIZES[size])
    rss_imports = _rss_mb()
    config = actor_rollout_ref_config(model_dir)
    config.model.use_remove_padding = False
    if mode == "lora":
        config.model.update({"lora_rank": rank, "lora_alpha": 2 * rank, "target_modules": "all-linear"})
    wg = LocalWorkerGroup(ResourcePool([1]), ClassWithInitArgs(ActorRolloutRefWorker, config=config,
                                                                role="actor_rollout_ref"))
    wg.init_model()
    worker = wg._workers[0]
    vocab = worker.actor_module.config.vocab_size
    batch = ppo_batch(batch_size=8, prompt_len=16, response_len=16, vocab_size=vocab, seed=0)
    batch = batch.union(wg.compute_log_prob(batch)).union(wg.compute_ref_log_prob(batch))
    wg.update_actor(batch)

    models = [worker.actor_module]
    if worker.ref_policy.actor_module is not worker.actor_module:
        models.append(worker.ref_policy.actor_module)
    params = [p for m in models for p in m.parameters()]
    trainable = [p for p in worker.actor_module.parameters() if p.requires_grad]
    state = [v for s in worker.actor_optimizer.state.values() for k, v in s.items()
             if isinstance(v, torch.Tensor) and k != "step"]
    n_frozen = sum(p.numel() for p in worker.actor_module.parameters() if not p.requires_grad)
    n_trainable = sum(p.numel() for p in trainable)
    n_ref_copy = sum(p.numel() for p in models[1].parameters()) if len(models) > 1 else 0
    result = {
        "models": len(models),
        "param_bytes": _bytes(params),
        "grad_bytes": _bytes(trainable),
        "optim_bytes": _bytes(state),
        "trainable_m": n_trainable / 1e6,
        "total_m": (n_frozen + n_trainable) / 1e6,
        # GPU projection: fp32 trainable + grads + 2 Adam moments; frozen base and reference copy in bf16
        "gpu_bytes": 16 * n_trainable + 2 * n_frozen + 2 * n_ref_copy,
        "rss_imports_mb": rss_imports,
        "peak_rss_mb": _rss_mb(),
    }
    with open(out, "w") as f:
        json.dump(result, f)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child(*args.child[:2], args.child[2], args.rank)
        return
    results = {}
    for size in args.sizes:
        for mode in ("full", "lora"):
            out = tempfile.mktemp(suffix=".json")
            print(f"[lora-memory] {size} / {mode} ...", flush=True)
            subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, size, out, "--rank",
                            str(args.rank)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                results[(size, mode)] = json.load(f)
    mb = 1 / 2**20
    print(f"\nActor + reference memory, one PPO step on CPU (fp32), LoRA rank {args.rank} on all linear layers\n")
    print("| model | mode | params (M) | trainable (M) | models held | param MiB | grad MiB | Adam MiB | "
          "sum MiB | full/LoRA | peak RSS MiB (after imports) | GPU bf16 projection MiB | full/LoRA |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        full = results[(size, "full")]
        for mode in ("full", "lora"):
            r = results[(size, mode)]
            total = r["param_bytes"] + r["grad_bytes"] + r["optim_bytes"]
            full_total = full["param_bytes"] + full["grad_bytes"] + full["optim_bytes"]
            print(f"| {size} {SIZES[size]} | {mode} | {r['total_m']:.2f} | {r['trainable_m']:.3f} | {r['models']} | "
                  f"{r['param_bytes'] * mb:.1f} | {r['grad_bytes'] * mb:.1f} | {r['optim_bytes'] * mb:.1f} | "
                  f"{total * mb:.1f} | {full_total / total:.2f}x | {r['peak_rss_mb']:.0f} ({r['rss_imports_mb']:.0f}) | "
                  f"{r['gpu_bytes'] * mb:.1f} | {full['gpu_bytes'] / r['gpu_bytes']:.2f}x |")
    if args.plot:
        plot(results, args.sizes, args.rank, args.plot)


def plot(results: dict, sizes: list[str], rank: int, path: str) -> None:
    """Stacked bars (parameters, gradients, Adam state; MiB) for full and LoRA per model size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        bottom = [0.0, 0.0]
        for key, label in (("param_bytes", "parameters"), ("grad_bytes", "gradients"), ("optim_bytes", "Adam state")):
            values = [results[(size, mode)][key] / 2**20 for mode in ("full", "lora")]
            ax.bar(["full fine-tuning", f"LoRA r={rank}"], values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_title(f"{size}: {SIZES[size]['layers']} layers, hidden {SIZES[size]['hidden']}\n"
                     f"full / LoRA = {bottom[0] / bottom[1]:.1f}x")
        ax.set_ylabel("MiB (actor + reference)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\n[lora-memory] plot: {path}")


if __name__ == "__main__":
    main()
