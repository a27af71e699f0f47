"""A 2-rank FSDP2 checkpoint as the trainer saves it (gloo, sharded DTensors, no HF weights), for the model merger's
tests in the main environment (test_model_merger.py) and in the vLLM one (workers/rollout/test_vllm_merged_*)."""
from __future__ import annotations

import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers"))
from workers_testlib import actor_config, ppo_batch, sharded_actor, with_old_log_probs  # noqa: E402

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_ids(vocab: int) -> torch.Tensor:
    """[3, 9] token ids whose logits the tests compare."""
    return torch.randint(3, vocab, (3, 9), generator=torch.Generator().manual_seed(7))


def _rank_main(rank: int, port: int, model_dir: str, vocab: int, out_dir: str, hsdp: bool) -> None:
    """One actor update on this rank's half of a batch, a checkpoint with verl's default contents (no hf_model),
    and the trained model's logits on a probe batch (rank 0 writes them)."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.sharding import build_fsdp_causal_lm

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        actor = sharded_actor(model_dir, actor_config(ppo_mini_batch_size=4, ppo_micro_batch_size_per_gpu=2))
        data = with_old_log_probs(actor, ppo_batch(vocab_size=vocab, seed=3), noise=0.3)
        actor.update_policy(data.chunk(WORLD)[rank])
        manager = FSDPCheckpointManager(actor.actor_module, actor.actor_optimizer, None,
                                        AutoTokenizer.from_pretrained(model_dir),
                                        {"save_contents": ["model", "optimizer", "extra"]})
        manager.save_checkpoint(os.path.join(out_dir, "actor"))
        with torch.no_grad():
            logits = actor.actor_module(input_ids=probe_ids(vocab)).logits
        if rank == 0:
            torch.save(logits, os.path.join(out_dir, "trained_logits.pt"))
        if hsdp:  # fsdp_size=1 on 2 ranks: a 2-D (replicate, dp_shard) mesh, placements (Replicate(), Shard(0))
            model = build_fsdp_causal_lm(OmegaConf.create({"path": model_dir}), None,
                                         build_device_mesh("cpu", fsdp_size=1), "cpu")
            FSDPCheckpointManager(model, processing_class=AutoTokenizer.from_pretrained(model_dir),
                                  checkpoint_contents={}).save_checkpoint(os.path.join(out_dir, "hsdp"))
    finally:
        dist.destroy_process_group()


def save_two_rank_checkpoint(model_dir: str, vocab: int, out_dir: str, hsdp: bool = False) -> str:
    """Train ``model_dir`` one step on 2 gloo ranks and save ``out_dir/actor`` (model_world_size_2_rank_{0,1}.pt,
    huggingface/ with config and tokenizer only) and ``out_dir/trained_logits.pt``; with ``hsdp`` also the untrained
    model from a 2-D HSDP mesh in ``out_dir/hsdp``. Returns ``out_dir``."""
    mp.spawn(_rank_main, args=(free_port(), model_dir, vocab, out_dir, hsdp), nprocs=WORLD, join=True)
    return out_dir
