"""HSDP (fsdp_config.fsdp_size) on four gloo ranks: a 2-D (replicate x dp_shard) mesh gives the same update as plain
1-D FSDP, keeps the replicas of each shard identical, round-trips a sharded checkpoint and exports HF weights; the
workers build that mesh from the config key."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch.distributed.tensor import Replicate, Shard

from test_fsdp_workers import actor_rollout_ref_config, critic_worker_config
from workers_testlib import actor_config, full_params, ppo_batch, with_old_log_probs

WORLD, FSDP_SIZE, ROWS = 4, 2, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _actor(model_dir: str, mesh):
    """The tiny model sharded over ``mesh`` with plain SGD (lr 1: the update is the clipped gradient itself)."""
    from verl.workers.actor import DataParallelPPOActor
    from verl.workers.sharding import build_fsdp_causal_lm

    module = build_fsdp_causal_lm(OmegaConf.create({"path": model_dir}), None, mesh, "cpu", force_fsdp2=True)
    cfg = actor_config(ppo_mini_batch_size=ROWS // WORLD, ppo_micro_batch_size_per_gpu=1, use_kl_loss=True)
    return DataParallelPPOActor(cfg, module, torch.optim.SGD(module.parameters(), lr=1.0))


def _local_shards(module) -> dict[str, torch.Tensor]:
    return {n: p.to_local().detach().clone() for n, p in module.named_parameters()}


def _worker_placements(model_dir: str) -> dict:
    """Placements of the first parameter of the models the real workers build with fsdp_size=2."""
    from verl.workers.fsdp_workers import ActorRolloutRefWorker, CriticWorker

    actor_cfg = actor_rollout_ref_config(model_dir)
    actor_cfg.actor.fsdp_config.fsdp_size = FSDP_SIZE
    actor = ActorRolloutRefWorker(actor_cfg, role="actor_rollout_ref")
    actor.init_model()
    critic_cfg = critic_worker_config(model_dir)
    critic_cfg.model.fsdp_config = {"fsdp_size": FSDP_SIZE}
    critic = CriticWorker(critic_cfg)
    critic.init_model()
    first = lambda m: next(m.parameters())  # noqa: E731
    return {"actor": first(actor.actor_module).placements, "ref": first(actor.ref_policy.actor_module).placements,
            "critic": first(critic.critic_module).placements}


def _run(rank: int, model_dir: str, vocab: int, out_dir: str) -> dict:
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
    from verl.utils.fsdp_utils import build_device_mesh

    flat_mesh, hsdp_mesh = build_device_mesh("cpu"), build_device_mesh("cpu", fsdp_size=FSDP_SIZE)
    flat, hsdp = _actor(model_dir, flat_mesh), _actor(model_dir, hsdp_mesh)
    data = with_old_log_probs(flat, ppo_batch(vocab_size=vocab, seed=3), noise=0.3)  # full batch on every rank
    data.batch["ref_log_prob"] = data.batch["old_log_probs"] + 0.2
    mine = data.chunk(WORLD)[rank]
    initial = full_params(hsdp.actor_module)
    result = {
        "initial": initial,
        "mesh": (tuple(hsdp_mesh.mesh_dim_names), tuple(hsdp_mesh.shape), tuple(flat_mesh.shape)),
        "placements": {tuple(p.placements) for p in hsdp.actor_module.parameters()},
        "flat_metrics": flat.update_policy(mine),
        "hsdp_metrics": hsdp.update_policy(mine),
        "flat": full_params(flat.actor_module),
        "hsdp": full_params(hsdp.actor_module),
        "hsdp_local": _local_shards(hsdp.actor_module),
    }
    ckpt = os.path.join(out_dir, "ckpt")
    manager = FSDPCheckpointManager(hsdp.actor_module, hsdp.actor_optimizer)
    manager.save_checkpoint(ckpt)
    hsdp.update_policy(mine)  # move away, then restore
    manager.load_checkpoint(ckpt)
    result["restored_exactly"] = all(torch.equal(result["hsdp_local"][n], p.to_local())
                                     for n, p in hsdp.actor_module.named_parameters())
    result["workers"] = _worker_placements(model_dir)
    return result


def _rank_main(rank: int, port: int, model_dir: str, vocab: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.save(_run(rank, model_dir, vocab, out_dir), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def hsdp_results(tiny_model_dir, tiny_vocab, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("hsdp"))
    mp.spawn(_rank_main, args=(_free_port(), tiny_model_dir, tiny_vocab, out_dir), nprocs=WORLD, join=True)
    return out_dir, [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(WORLD)]


def test_fsdp_size_builds_a_replicate_by_shard_mesh(hsdp_results):
    _, results = hsdp_results
    assert results[0]["mesh"] == (("replicate", "dp_shard"), (WORLD // FSDP_SIZE, FSDP_SIZE), (WORLD,))
    assert results[0]["placements"] == {(Replicate(), Shard(0))}


def test_hsdp_update_equals_flat_fsdp(hsdp_results):
    _, results = hsdp_results
    for r in results:
        for name, value in r["flat"].items():
            torch.testing.assert_close(r["hsdp"][name], value, atol=1e-6, rtol=0, msg=name)
        for key in ("actor/pg_loss", "actor/kl_loss", "actor/entropy_loss", "actor/grad_norm"):
            assert r["hsdp_metrics"][key] == pytest.approx(r["flat_metrics"][key], rel=1e-5, abs=1e-6), key
    # the update moved every weight, so the equality above is not that of untouched copies
    assert all(not torch.equal(results[0]["hsdp"][n], v) for n, v in results[0]["initial"].items())


def test_replicas_of_a_shard_stay_identical(hsdp_results):
    """Ranks 0 and 2 hold shard 0, ranks 1 and 3 shard 1 (mesh [[0, 1], [2, 3]]): after an update on different data,
    each replica pair is bit-identical, and the two shards of a group differ."""
    _, results = hsdp_results
    local = [r["hsdp_local"] for r in results]
    for name in local[0]:
        assert torch.equal(local[0][name], local[2][name]) and torch.equal(local[1][name], local[3][name]), name
    embed = "model.embed_tokens.weight"
    assert local[0][embed].shape[0] < results[0]["hsdp"][embed].shape[0]  # a shard, not the full tensor
    assert not torch.equal(local[0][embed], local[1][embed])


def test_hsdp_checkpoint_round_trips_and_exports_hf(hsdp_results, tmp_path):
    from transformers import AutoModelForCausalLM

    from verl.model_merger import merge_fsdp_checkpoint

    out_dir, results = hsdp_results
    assert all(r["restored_exactly"] for r in results)
    files = set(os.listdir(os.path.join(out_dir, "ckpt")))
    assert {f"model_world_size_{WORLD}_rank_{r}.pt" for r in range(WORLD)} <= files
    hf_dir = os.path.join(out_dir, "ckpt", "huggingface")
    assert "lm_head.weight" not in load_file(os.path.join(hf_dir, "model.safetensors"))
    exported = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    for name, param in exported.named_parameters():
        assert torch.equal(param.detach(), results[0]["hsdp"][name]), name
    # the offline merger joins the 2-D shards (replicas counted once) into the same weights
    merged = load_file(os.path.join(merge_fsdp_checkpoint(os.path.join(out_dir, "ckpt"), str(tmp_path / "merged")),
                                    "model.safetensors"))
    assert merged and all(torch.equal(value, results[0]["hsdp"][name]) for name, value in merged.items())


def test_workers_shard_with_the_configured_fsdp_size(hsdp_results):
    _, results = hsdp_results
    hsdp = (Replicate(), Shard(0))
    assert {k: tuple(v) for k, v in results[0]["workers"].items()} == {"actor": hsdp, "ref": hsdp, "critic": hsdp}
