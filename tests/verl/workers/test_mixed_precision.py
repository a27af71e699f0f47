"""The GPU recipe's precision path on CPU: ActorRolloutRefWorker on two gloo ranks (tiny Qwen2) with bf16 mixed
precision (FSDP2 bf16 compute over fp32 master weights, fp32 gradient reduction) and gradient checkpointing.

Four workers (fp32 / bf16, with and without checkpointing) update from one rollout batch, so their gradients can be
compared; the bf16 + checkpointing worker then takes a second step from its own bf16 rollout."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from test_fsdp_workers import N_SAMPLES, PROMPTS, actor_rollout_ref_config
from verl.protocol import DataProto
from verl.single_controller.base.worker import get_free_port
from workers_testlib import full_params, left_padded_prompts, record_step_gradients

BF16 = {"param_dtype": "bf16", "reduce_dtype": "fp32"}
RUNS = (("fp32", None, False), ("fp32_ckpt", None, True), ("bf16", BF16, False), ("bf16_ckpt", BF16, True))


def _worker(model_dir: str, mixed_precision, checkpointing: bool):
    from verl.workers.fsdp_workers import ActorRolloutRefWorker

    config = actor_rollout_ref_config(model_dir, shuffle=False)  # the same micro-batches in every run
    config.model.enable_gradient_checkpointing = checkpointing
    if mixed_precision is not None:  # what configs/ppo_trainer.yaml resolves to: the ref computes as the actor
        config.actor.fsdp_config.mixed_precision = mixed_precision
        config.ref.fsdp_config.mixed_precision = mixed_precision
    worker = ActorRolloutRefWorker(config, role="actor_rollout_ref")
    worker.init_model()
    return worker


def _attention_counter(module) -> list:
    """[number of attention-block forwards so far]: a checkpointed layer runs its attention again in backward."""
    count = [0]
    for name, sub in module.named_modules():
        if name.endswith("self_attn"):
            sub.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def _with_advantages(batch: DataProto, seed: int) -> DataProto:
    g = torch.Generator().manual_seed(seed)
    batch.batch["advantages"] = torch.randn(batch.batch["responses"].shape, generator=g) * batch.batch["response_mask"]
    return batch


def _step(worker, batch: DataProto, grads: list, attention: list) -> dict:
    """compute_log_prob -> compute_ref_log_prob -> update_actor on ``batch`` (left untouched)."""
    scored = batch.select(deepcopy=True).union(worker.compute_log_prob(batch)).union(worker.compute_ref_log_prob(batch))
    before = attention[0]
    metrics = worker.update_actor(scored).meta_info["metrics"]
    return {
        "old_log_probs": scored.batch["old_log_probs"],
        "ref_log_prob": scored.batch["ref_log_prob"],
        "response_mask": scored.batch["response_mask"],
        "metrics": metrics,
        "grads": grads[-1],
        "update_attention_calls": attention[0] - before,
    }


def _run(model_dir: str, vocab: int, rank: int, world: int) -> dict:
    ids, mask, pos = left_padded_prompts(PROMPTS, 6, vocab, seed=2)
    prompts = DataProto.from_dict(
        tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos},
        non_tensors={"uid": [f"p{i}" for i in range(PROMPTS)]},
    ).repeat(N_SAMPLES, interleave=True).chunk(world)[rank]
    result, batch = {"runs": {}}, None
    for name, mixed_precision, checkpointing in RUNS:
        worker = _worker(model_dir, mixed_precision, checkpointing)
        if batch is None:
            batch = _with_advantages(worker.generate_sequences(prompts), seed=0)
        grads = record_step_gradients(worker.actor_module, worker.actor_optimizer)
        attention = _attention_counter(worker.actor_module)
        if name == "bf16_ckpt":
            result["initial"] = full_params(worker.actor_module)
            result["ref_dtypes"] = {p.dtype for p in worker.ref_policy.actor_module.parameters()}
        result["runs"][name] = _step(worker, batch, grads, attention)
    # the bf16 + checkpointing worker goes on from a rollout of its own (generated from gathered bf16 weights)
    result["second"] = _step(worker, _with_advantages(worker.generate_sequences(prompts), seed=1), grads, attention)
    result["final"] = full_params(worker.actor_module)
    result["master_dtypes"] = {p.dtype for p in worker.actor_module.parameters()}
    result["master_is_sharded"] = all(hasattr(p, "device_mesh") for p in worker.actor_module.parameters())
    result["optimizer_state_dtypes"] = {
        v.dtype for state in worker.actor_optimizer.state.values() for k, v in state.items() if k != "step"
    }
    return result


def _rank_main(rank: int, world: int, port: int, model_dir: str, vocab: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        torch.save(_run(model_dir, vocab, rank, world), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tiny_model_dir, tiny_vocab, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("mixed_precision"))
    mp.spawn(_rank_main, args=(2, get_free_port(), tiny_model_dir, tiny_vocab, out_dir), nprocs=2, join=True)
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(2)]


def _valid(step: dict, key: str) -> torch.Tensor:
    return step[key][step["response_mask"].bool()]


@pytest.mark.parametrize("plain, checkpointed", [("fp32", "fp32_ckpt"), ("bf16", "bf16_ckpt")])
def test_gradient_checkpointing_recomputes_each_layer_and_gives_the_same_gradients(ranks, plain, checkpointed):
    for rank in ranks:
        without, with_ckpt = rank["runs"][plain], rank["runs"][checkpointed]
        # checkpointing is really on: backward runs every layer's attention a second time
        assert with_ckpt["update_attention_calls"] == 2 * without["update_attention_calls"] > 0
        for key in ("actor/pg_loss", "actor/grad_norm"):
            assert with_ckpt["metrics"][key] == pytest.approx(without["metrics"][key], rel=1e-6), key
    grads, grads_ckpt = ranks[0]["runs"][plain]["grads"], ranks[0]["runs"][checkpointed]["grads"]
    assert grads.keys() == grads_ckpt.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_bf16_mixed_precision_computes_in_bf16_close_to_fp32(ranks):
    for rank in ranks:
        fp32, bf16 = rank["runs"]["fp32"], rank["runs"]["bf16"]
        diff = (_valid(bf16, "old_log_probs") - _valid(fp32, "old_log_probs")).abs().max().item()
        assert 0 < diff < 0.05  # bf16 rounding shows (the policy is honoured) and stays small
    fp32_grads, bf16_grads = ranks[0]["runs"]["fp32"]["grads"], ranks[0]["runs"]["bf16"]["grads"]
    for name, grad in fp32_grads.items():
        assert bf16_grads[name].dtype == torch.float32, name  # reduced (reduce_dtype) and applied in fp32
        assert ((bf16_grads[name] - grad).norm() <= 0.05 * grad.norm()), name


def test_bf16_steps_are_finite_change_every_parameter_and_keep_fp32_master_weights(ranks):
    for rank in ranks:
        for step in (rank["runs"]["bf16_ckpt"], rank["second"]):
            for key in ("actor/pg_loss", "actor/grad_norm", "actor/entropy_loss", "actor/kl_loss"):
                assert all(torch.isfinite(torch.tensor(step["metrics"][key]))), key
            for key in ("old_log_probs", "ref_log_prob"):
                assert torch.isfinite(_valid(step, key)).all(), key
        assert rank["master_dtypes"] == {torch.float32} and rank["master_is_sharded"]
        assert rank["optimizer_state_dtypes"] == {torch.float32}
    initial, final = ranks[0]["initial"], ranks[0]["final"]
    unchanged = [name for name in initial if torch.equal(initial[name], final[name])]
    assert not unchanged, f"parameters that two bf16 steps did not change: {unchanged}"
    assert all(torch.equal(final[name], ranks[1]["final"][name]) for name in final)


def test_reference_keeps_bf16_weights_and_matches_the_actor_before_the_first_update(ranks):
    for rank in ranks:
        assert rank["ref_dtypes"] == {torch.bfloat16}  # frozen: no fp32 copy, half the memory
        first, second = rank["runs"]["bf16_ckpt"], rank["second"]
        # the same bf16 weights and the same bf16 compute as the actor: KL is exactly 0 before any update
        assert torch.equal(_valid(first, "ref_log_prob"), _valid(first, "old_log_probs"))
        assert not torch.equal(_valid(second, "ref_log_prob"), _valid(second, "old_log_probs"))
