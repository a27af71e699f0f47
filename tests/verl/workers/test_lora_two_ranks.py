"""A LoRA actor on two FSDP2 ranks (spawn + gloo) against the plain single-rank module: frozen base weights and
trainable adapters share each decoder layer's FSDP unit; two updates give the same adapters on both, the base never
moves, greedy rollouts match, the adapter-only checkpoint round-trips from DTensor shards, and the merged weights
streamed for the vLLM sync equal the merged HF export."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from verl.protocol import DataProto
from workers_testlib import actor_config, full_params, left_padded_prompts, ppo_batch, with_old_log_probs

ROWS = 8
LORA = {"lora_rank": 4, "lora_alpha": 8, "target_modules": "all-linear"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(model_dir: str, vocab: int, rank: int, world: int, out_dir: str) -> dict:
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
    from verl.utils.fsdp_utils import build_device_mesh, is_sharded
    from verl.workers.actor import DataParallelPPOActor
    from verl.workers.rollout.hf_rollout import HFRollout
    from verl.workers.rollout.vllm_weight_sync import iter_sync_weights
    from verl.workers.sharding import build_fsdp_causal_lm

    cfg = actor_config(ppo_mini_batch_size=ROWS // world, ppo_micro_batch_size_per_gpu=2)
    module = build_fsdp_causal_lm(OmegaConf.create({"path": model_dir, **LORA}), None, build_device_mesh("cpu"), "cpu")
    assert is_sharded(module) == (world > 1)
    trainable = [p for p in module.parameters() if p.requires_grad]
    actor = DataParallelPPOActor(cfg, module, torch.optim.SGD(trainable, lr=1.0))
    before = full_params(module)
    data = with_old_log_probs(actor, ppo_batch(vocab_size=vocab, seed=3), noise=0.3)
    metrics = [actor.update_policy(data.chunk(world)[rank]) for _ in range(2)]  # step 2 moves lora_A too

    ids, mask, pos = left_padded_prompts(ROWS, 6, vocab, seed=21)
    prompts = DataProto.from_dict(tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos},
                                  meta_info={"eos_token_id": 1, "pad_token_id": 0, "validate": True})
    rollout = HFRollout(module, OmegaConf.create({"response_length": 5, "val_kwargs": {"do_sample": False}}))
    gen = rollout.generate_sequences(prompts.chunk(world)[rank])

    ckpt = os.path.join(out_dir, f"ckpt{world}")
    manager = FSDPCheckpointManager(module, actor.actor_optimizer, checkpoint_contents=["model", "optimizer", "hf_model"])
    manager.save_checkpoint(ckpt)
    after = full_params(module)
    actor.update_policy(data.chunk(world)[rank])  # move away, then restore
    manager.load_checkpoint(ckpt)
    synced = dict(iter_sync_weights(module))
    return {"before": before, "after": after, "restored": full_params(module), "synced": synced,
            "responses": gen.batch["responses"], "grad_norm": [m["actor/grad_norm"][0] for m in metrics]}


def _rank_main(rank: int, world: int, port: int, model_dir: str, vocab: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save(_run(model_dir, vocab, rank, world, out_dir), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(cpu_group, tiny_model_dir, tiny_vocab, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("lora_ranks"))
    mp.spawn(_rank_main, args=(2, _free_port(), tiny_model_dir, tiny_vocab, out_dir), nprocs=2, join=True)
    two = [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(2)]
    return out_dir, two, _run(tiny_model_dir, tiny_vocab, rank=0, world=1, out_dir=out_dir)


def test_two_ranks_train_the_same_adapters_as_one_and_never_move_the_base(runs):
    from verl.utils.checkpoint.lora_weights import is_lora_name

    _, (rank0, rank1), single = runs
    for result in (rank0, single):
        moved = [n for n in result["before"] if not torch.equal(result["before"][n], result["after"][n])]
        assert moved and all(is_lora_name(n) for n in moved), moved
        assert any(".lora_A." in n for n in moved) and any(".lora_B." in n for n in moved)
    for name, value in single["after"].items():
        torch.testing.assert_close(rank0["after"][name], value, atol=1e-5, rtol=0, msg=name)
        assert torch.equal(rank0["after"][name], rank1["after"][name])
    assert rank0["grad_norm"] == pytest.approx(single["grad_norm"], abs=1e-5)
    assert torch.equal(torch.cat([rank0["responses"], rank1["responses"]]), single["responses"])


def test_sharded_adapter_checkpoint_restores_and_sync_weights_equal_the_merged_export(runs):
    from safetensors.torch import load_file

    out_dir, (rank0, rank1), single = runs
    for result in (rank0, rank1, single):
        assert all(torch.equal(result["after"][n], t) for n, t in result["restored"].items())
    for world, result in ((2, rank0), (1, single)):
        exported = load_file(os.path.join(out_dir, f"ckpt{world}", "huggingface", "model.safetensors"))
        synced = result["synced"]
        assert set(exported) <= set(synced) and not any("lora" in n or "base_layer" in n for n in synced)
        for name, tensor in exported.items():
            assert torch.equal(synced[name], tensor), name
