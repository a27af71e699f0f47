"""Two FSDP2 ranks (torch.multiprocessing spawn + gloo) against one rank (the plain module a single rank uses): the
same update, the same greedy rollout, a sharded checkpoint that round-trips, and the same HF export."""
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from verl.protocol import DataProto
from workers_testlib import actor_config, critic_config, full_params, left_padded_prompts, ppo_batch, sharded_actor, sharded_critic, with_old_log_probs

ROWS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prompts(vocab):
    ids, mask, pos = left_padded_prompts(ROWS, 6, vocab, seed=21)
    return DataProto.from_dict(
        tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos},
        meta_info={"eos_token_id": 1, "pad_token_id": 0, "validate": True},
    )


def _run(model_dir: str, vocab: int, rank: int, world: int, ckpt_dir: str = None) -> dict:
    """One update of actor and critic on this rank's share of the same global batch, plus a greedy rollout."""
    from omegaconf import OmegaConf

    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
    from verl.utils.fsdp_utils import is_sharded
    from verl.workers.rollout.hf_rollout import HFRollout

    per_rank = ROWS // world
    actor = sharded_actor(
        model_dir, actor_config(ppo_mini_batch_size=per_rank, ppo_micro_batch_size_per_gpu=2, use_kl_loss=True), optimizer="sgd"
    )
    rollout = HFRollout(actor.actor_module, OmegaConf.create({"response_length": 5, "val_kwargs": {"do_sample": False}}))
    gen = rollout.generate_sequences(_prompts(vocab).chunk(world)[rank])
    assert is_sharded(actor.actor_module) == (world > 1)  # one rank: no FSDP2 wrapping (nothing to shard)

    data = with_old_log_probs(actor, ppo_batch(vocab_size=vocab, seed=3), noise=0.3)  # full batch on every rank
    data.batch["ref_log_prob"] = data.batch["old_log_probs"] + 0.2
    actor_metrics = actor.update_policy(data.chunk(world)[rank])

    critic = sharded_critic(model_dir, critic_config(ppo_mini_batch_size=per_rank, ppo_micro_batch_size_per_gpu=2), optimizer="sgd")
    critic_metrics = critic.update_critic(ppo_batch(vocab_size=vocab, seed=5).chunk(world)[rank])

    result = {
        "responses": gen.batch["responses"],
        "actor": full_params(actor.actor_module),
        "critic": full_params(critic.critic_module),
        "actor_metrics": actor_metrics,
        "critic_metrics": critic_metrics,
    }
    if ckpt_dir is not None:
        manager = FSDPCheckpointManager(actor.actor_module, actor.actor_optimizer)
        manager.save_checkpoint(ckpt_dir)
        local_before = {n: _local(p).clone() for n, p in actor.actor_module.named_parameters()}
        actor.update_policy(data.chunk(world)[rank])  # move away, then restore
        manager.load_checkpoint(ckpt_dir)
        result["restored_exactly"] = all(
            torch.equal(local_before[n], _local(p)) for n, p in actor.actor_module.named_parameters()
        )
    return result


def _local(param: torch.Tensor) -> torch.Tensor:
    return param.to_local() if hasattr(param, "to_local") else param


def _rank_main(rank: int, world: int, port: int, model_dir: str, vocab: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = _run(model_dir, vocab, rank, world, ckpt_dir=os.path.join(out_dir, "ckpt"))
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_results(tiny_model_dir, tiny_vocab, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("two_ranks"))
    mp.spawn(_rank_main, args=(2, _free_port(), tiny_model_dir, tiny_vocab, out_dir), nprocs=2, join=True)
    return out_dir, [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def one_rank_result(cpu_group, tiny_model_dir, tiny_vocab, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("one_rank"))
    return out_dir, _run(tiny_model_dir, tiny_vocab, rank=0, world=1, ckpt_dir=os.path.join(out_dir, "ckpt"))


def test_two_ranks_update_equals_one_rank(two_rank_results, one_rank_result):
    _, (rank0, rank1) = two_rank_results
    _, single = one_rank_result
    for part in ("actor", "critic"):
        for name, value in single[part].items():
            torch.testing.assert_close(rank0[part][name], value, atol=1e-5, rtol=0, msg=f"{part}: {name}")
            assert torch.equal(rank0[part][name], rank1[part][name])
    for key in ("actor/pg_loss", "actor/pg_clipfrac", "actor/kl_loss", "actor/entropy_loss", "actor/grad_norm"):
        assert rank0["actor_metrics"][key][0] == pytest.approx(single["actor_metrics"][key][0], abs=1e-5), key
    for key in ("critic/vf_loss", "critic/vpred_mean", "critic/grad_norm"):
        assert rank0["critic_metrics"][key][0] == pytest.approx(single["critic_metrics"][key][0], abs=1e-5), key
    # greedy generation from gathered shards: the two halves equal the single-rank rollout
    assert torch.equal(torch.cat([rank0["responses"], rank1["responses"]]), single["responses"])


def exported_config_ties(hf_dir: str) -> bool:
    with open(os.path.join(hf_dir, "config.json")) as f:
        return bool(json.load(f)["tie_word_embeddings"])


def test_two_rank_sharded_checkpoint_round_trip_and_hf_export(two_rank_results):
    from transformers import AutoModelForCausalLM

    out_dir, (rank0, rank1) = two_rank_results
    assert rank0["restored_exactly"] and rank1["restored_exactly"]
    files = sorted(os.listdir(os.path.join(out_dir, "ckpt")))
    assert {"model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt", "optim_world_size_2_rank_1.pt"} <= set(files)
    hf_dir = os.path.join(out_dir, "ckpt", "huggingface")
    # the gathered shards hold two copies of the tied embedding; only the input embedding is written
    written = load_file(os.path.join(hf_dir, "model.safetensors"))
    assert exported_config_ties(hf_dir) and "lm_head.weight" not in written
    exported = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    for name, param in exported.named_parameters():
        assert torch.equal(param.detach(), rank0["actor"][name]), name
    assert torch.equal(exported.get_output_embeddings().weight, rank0["actor"]["model.embed_tokens.weight"])


def test_one_rank_plain_checkpoint_round_trips_and_exports_like_two_ranks(two_rank_results, one_rank_result):
    """The plain single-rank module writes the same checkpoint layout and an HF export with the same tensors
    (names, shapes, dtypes, tied embedding left out) as two FSDP2 ranks; values differ only by the update's
    floating-point summation order."""
    two_dir, _ = two_rank_results
    one_dir, single = one_rank_result
    assert single["restored_exactly"]
    assert {"model_world_size_1_rank_0.pt", "optim_world_size_1_rank_0.pt"} <= set(os.listdir(os.path.join(one_dir, "ckpt")))
    one = load_file(os.path.join(one_dir, "ckpt", "huggingface", "model.safetensors"))
    two = load_file(os.path.join(two_dir, "ckpt", "huggingface", "model.safetensors"))
    assert one.keys() == two.keys() and "lm_head.weight" not in one
    assert exported_config_ties(os.path.join(one_dir, "ckpt", "huggingface"))
    for name in one:
        assert one[name].dtype == two[name].dtype
        torch.testing.assert_close(one[name], two[name], atol=1e-5, rtol=0, msg=name)
