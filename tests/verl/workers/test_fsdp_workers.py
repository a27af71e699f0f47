"""ActorRolloutRefWorker and CriticWorker end to end on the tiny Qwen2 (in-process worker group, one gloo rank):
generate -> log-probs -> ref -> values -> updates -> checkpoint round trip -> HF export."""
import os

import pytest
import torch
from omegaconf import OmegaConf

from verl.protocol import DataProto
from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool
from verl.single_controller.local import LocalWorkerGroup
from verl.workers.fsdp_workers import ActorRolloutRefWorker, CriticWorker
from workers_testlib import full_params, left_padded_prompts

N_SAMPLES = 2
PROMPTS = 4


def _optim(lr):
    return {"lr": lr, "weight_decay": 0.0, "warmup_style": "constant", "lr_warmup_steps": -1, "total_training_steps": 3}


def actor_rollout_ref_config(model_dir, **actor_overrides):
    return OmegaConf.create(
        {
            "device": "cpu",
            "model": {"path": model_dir, "use_remove_padding": True, "enable_gradient_checkpointing": True},
            "actor": {
                "ppo_mini_batch_size": PROMPTS,  # prompts, as in verl: x n / world size inside the worker
                "ppo_micro_batch_size": 4,  # legacy global key
                "ppo_epochs": 1,
                "shuffle": True,
                "clip_ratio": 0.2,
                "entropy_coeff": 0.0,
                "use_kl_loss": True,
                "kl_loss_coef": 0.01,
                "kl_loss_type": "low_var_kl",
                "loss_agg_mode": "token-mean",
                "grad_clip": 1.0,
                "optim": _optim(1e-3),
                "fsdp_config": {"param_offload": False, "optimizer_offload": False, "grad_offload": False},
                "checkpoint": {"save_contents": ["model", "optimizer", "extra", "hf_model"]},  # the test reads the HF weights
                **actor_overrides,
            },
            "rollout": {
                "name": "hf",
                "n": N_SAMPLES,
                "temperature": 1.0,
                "top_k": -1,
                "top_p": 1.0,
                "do_sample": True,
                "response_length": 5,
                "log_prob_micro_batch_size_per_gpu": 4,
                "val_kwargs": {"do_sample": False, "temperature": 0, "top_k": -1, "top_p": 1.0, "n": 1},
            },
            "ref": {"log_prob_micro_batch_size_per_gpu": 8, "fsdp_config": {"param_offload": False}},
        }
    )


def critic_worker_config(model_dir):
    return OmegaConf.create(
        {
            "device": "cpu",
            "rollout_n": N_SAMPLES,
            "model": {"path": model_dir, "tokenizer_path": model_dir, "use_remove_padding": False, "fsdp_config": {}},
            "optim": _optim(1e-3),
            "ppo_mini_batch_size": PROMPTS,
            "ppo_micro_batch_size_per_gpu": 2,
            "forward_micro_batch_size_per_gpu": 8,
            "ppo_epochs": 1,
            "grad_clip": 1.0,
            "cliprange_value": 0.5,
            "loss_agg_mode": "token-mean",
            "checkpoint": {"save_contents": ["model", "optimizer", "extra", "hf_model"]},
        }
    )


@pytest.fixture(scope="module")
def rollout_batch(cpu_group, tiny_model_dir, tiny_vocab):
    """An actor_rollout_ref worker group (in-process) and one generated, scored batch."""
    config = actor_rollout_ref_config(tiny_model_dir)
    wg = LocalWorkerGroup(ResourcePool([1]), ClassWithInitArgs(ActorRolloutRefWorker, config=config, role="actor_rollout_ref"))
    wg.init_model()
    ids, mask, pos = left_padded_prompts(PROMPTS, 6, tiny_vocab, seed=2)
    prompts = DataProto.from_dict(
        tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos},
        non_tensors={"uid": [f"p{i}" for i in range(PROMPTS)]},
    ).repeat(N_SAMPLES, interleave=True)
    batch = wg.generate_sequences(prompts)
    assert config.actor.ppo_mini_batch_size == PROMPTS  # the driver's config is not rewritten by the worker
    return wg, batch


def test_generate_log_prob_and_ref_shapes(rollout_batch):
    wg, batch = rollout_batch
    rows, response_length = PROMPTS * N_SAMPLES, 5
    for key, width in (("responses", response_length), ("response_mask", response_length), ("input_ids", 6 + response_length)):
        assert batch.batch[key].shape == (rows, width), key
    assert list(batch.non_tensor_batch["uid"]) == [f"p{i // 2}" for i in range(rows)]
    old = wg.compute_log_prob(batch)
    ref = wg.compute_ref_log_prob(batch)
    assert old.batch["old_log_probs"].shape == old.batch["entropys"].shape == (rows, response_length)
    mask = batch.batch["response_mask"].bool()
    # before any update the actor is the reference
    torch.testing.assert_close(old.batch["old_log_probs"][mask], ref.batch["ref_log_prob"][mask], atol=1e-5, rtol=0)


def _scored(wg, batch):
    batch = batch.union(wg.compute_log_prob(batch)).union(wg.compute_ref_log_prob(batch))
    g = torch.Generator().manual_seed(0)
    batch.batch["advantages"] = torch.randn(batch.batch["responses"].shape, generator=g) * batch.batch["response_mask"]
    return batch


def test_update_actor_metrics_and_exact_checkpoint_round_trip(rollout_batch, tmp_path):
    from transformers import AutoModelForCausalLM

    wg, batch = rollout_batch
    batch = _scored(wg, batch)
    worker = wg._workers[0]
    first = wg.update_actor(batch).meta_info["metrics"]
    for key in ("actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl", "actor/entropy_loss", "actor/kl_loss", "actor/grad_norm", "actor/lr"):
        assert key in first, key
    assert first["actor/lr"] == [1e-3] or first["actor/lr"] == 1e-3

    ckpt = str(tmp_path / "global_step_1" / "actor")
    wg.save_checkpoint(ckpt, global_step=1)
    saved = full_params(worker.actor_module)
    continued = wg.update_actor(batch).meta_info["metrics"]  # shuffle=True: uses the RNG saved above
    after_continue = full_params(worker.actor_module)
    wg.load_checkpoint(ckpt)
    assert all(torch.equal(saved[n], p) for n, p in full_params(worker.actor_module).items())
    replayed = wg.update_actor(batch).meta_info["metrics"]
    # model, optimizer moments, LR schedule and RNG all restored: the replayed step is bit-identical
    assert replayed["actor/pg_loss"] == continued["actor/pg_loss"]
    assert all(torch.equal(after_continue[n], p) for n, p in full_params(worker.actor_module).items())

    hf = AutoModelForCausalLM.from_pretrained(os.path.join(ckpt, "huggingface"), dtype=torch.float32)
    assert all(torch.equal(p.detach(), saved[n]) for n, p in hf.named_parameters())
    assert os.path.isfile(os.path.join(ckpt, "huggingface", "tokenizer_config.json"))


def test_critic_worker_values_update_and_hf_export(rollout_batch, tiny_model_dir, tmp_path):
    from transformers import AutoModelForTokenClassification

    _, batch = rollout_batch
    wg = LocalWorkerGroup(ResourcePool([1]), ClassWithInitArgs(CriticWorker, config=critic_worker_config(tiny_model_dir)))
    wg.init_model()
    values = wg.compute_values(batch).batch["values"]
    assert values.shape == batch.batch["responses"].shape
    batch = batch.union(DataProto.from_dict(tensors={"values": values, "returns": torch.ones_like(values) * batch.batch["response_mask"]}))
    metrics = wg.update_critic(batch).meta_info["metrics"]
    for key in ("critic/vf_loss", "critic/vf_clipfrac", "critic/vpred_mean", "critic/grad_norm", "critic/lr"):
        assert key in metrics, key
    wg.save_checkpoint(str(tmp_path / "critic"))
    exported = AutoModelForTokenClassification.from_pretrained(str(tmp_path / "critic" / "huggingface"), dtype=torch.float32)
    worker = wg._workers[0]
    current = full_params(worker.critic_module)
    assert all(torch.equal(p.detach(), current[n]) for n, p in exported.named_parameters())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ppo_mini_batch_size": 3, "ppo_micro_batch_size": 4}, "ppo_micro_batch_size_per_gpu=4 must divide"),
        ({"ppo_micro_batch_size": 4, "ppo_micro_batch_size_per_gpu": 2}, "set one"),
    ],
)
def test_bad_batch_sizes_are_named(cpu_group, tiny_model_dir, overrides, message):
    with pytest.raises(ValueError, match=message):
        ActorRolloutRefWorker(actor_rollout_ref_config(tiny_model_dir, **overrides), role="actor_rollout_ref")


def test_unknown_role_is_an_error(cpu_group, tiny_model_dir):
    with pytest.raises(ValueError, match="role='critic'"):
        ActorRolloutRefWorker(actor_rollout_ref_config(tiny_model_dir), role="critic")
