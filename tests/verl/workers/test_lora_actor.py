"""LoRA actors (actor_rollout_ref.model.lora_rank > 0) on the tiny Qwen2, in-process worker group on one gloo rank:
only the adapters train, the reference is the base model (the same module, adapters off), checkpoints hold only the
adapters and resume exactly, and the HF export is the merged model (+ a peft adapter folder on request)."""
import os

import pytest
import torch
from omegaconf import OmegaConf

from verl.protocol import DataProto
from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool
from verl.single_controller.local import LocalWorkerGroup
from verl.utils.checkpoint.lora_weights import is_lora_name
from verl.workers.fsdp_workers import ActorRolloutRefWorker
from test_fsdp_workers import N_SAMPLES, PROMPTS, actor_rollout_ref_config
from workers_testlib import full_params, left_padded_prompts

LORA = {"lora_rank": 4, "lora_alpha": 8, "target_modules": "all-linear"}


def lora_config(model_dir, **model_overrides):
    config = actor_rollout_ref_config(model_dir)
    config.model.update({**LORA, **model_overrides})
    return config


def _worker_group(config):
    wg = LocalWorkerGroup(ResourcePool([1]), ClassWithInitArgs(ActorRolloutRefWorker, config=config,
                                                                role="actor_rollout_ref"))
    wg.init_model()
    return wg


def _scored_batch(wg, vocab, seed=2):
    ids, mask, pos = left_padded_prompts(PROMPTS, 6, vocab, seed=seed)
    prompts = DataProto.from_dict(
        tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos},
        non_tensors={"uid": [f"p{i}" for i in range(PROMPTS)]},
    ).repeat(N_SAMPLES, interleave=True)
    batch = wg.generate_sequences(prompts)
    batch = batch.union(wg.compute_log_prob(batch)).union(wg.compute_ref_log_prob(batch))
    g = torch.Generator().manual_seed(0)
    batch.batch["advantages"] = torch.randn(batch.batch["responses"].shape, generator=g) * batch.batch["response_mask"]
    return batch


@pytest.fixture(scope="module")
def lora_run(cpu_group, tiny_model_dir, tiny_vocab):
    """A LoRA actor_rollout_ref worker group, one scored batch, and the parameters before any update."""
    wg = _worker_group(lora_config(tiny_model_dir))
    batch = _scored_batch(wg, tiny_vocab)
    return wg, batch, full_params(wg._workers[0].actor_module)


def test_only_the_adapters_are_trainable_and_there_is_no_reference_copy(lora_run):
    wg, _, before = lora_run
    worker = wg._workers[0]
    trainable = [n for n, p in worker.actor_module.named_parameters() if p.requires_grad]
    assert trainable and all(is_lora_name(n) for n in trainable)
    in_optimizer = {id(p) for group in worker.actor_optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in worker.actor_module.parameters() if p.requires_grad}
    assert worker.ref_policy.actor_module is worker.actor_module  # one model: the reference is the base inside it
    assert any(is_lora_name(n) for n in before) and any(not is_lora_name(n) for n in before)


def test_update_changes_only_adapters_and_reference_stays_the_base_model(lora_run, tiny_model_dir):
    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.actor import DataParallelPPOActor
    from verl.workers.sharding import build_fsdp_causal_lm

    wg, batch, before = lora_run
    worker = wg._workers[0]
    metrics = wg.update_actor(batch).meta_info["metrics"]
    after = full_params(worker.actor_module)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert changed and all(is_lora_name(n) for n in changed), changed
    assert any(".lora_B." in n for n in changed)
    # the clipped gradient norm is the adapters' (the frozen base has no gradients at all)
    assert all(p.grad is None for p in worker.actor_module.parameters())
    assert metrics["actor/grad_norm"][0] > 0

    base = DataParallelPPOActor(worker.config.ref, build_fsdp_causal_lm(
        OmegaConf.create({"path": tiny_model_dir, "use_remove_padding": True}), None, build_device_mesh("cpu"), "cpu",
        trainable=False))
    meta = {"micro_batch_size": 8, "temperature": 1.0}
    base_lp, _ = base.compute_log_prob(DataProto(batch=batch.batch, meta_info=meta))
    ref_lp = wg.compute_ref_log_prob(batch).batch["ref_log_prob"]
    actor_lp = wg.compute_log_prob(batch).batch["old_log_probs"]
    mask = batch.batch["response_mask"].bool()
    torch.testing.assert_close(ref_lp[mask], base_lp[mask], atol=1e-6, rtol=0)
    assert not torch.allclose(actor_lp[mask], ref_lp[mask], atol=1e-4)  # the adapters do change the policy


def test_checkpoint_holds_only_adapters_and_resumes_exactly(lora_run, tmp_path):
    wg, batch, _ = lora_run
    worker = wg._workers[0]
    wg.update_actor(batch)  # Adam moments and the LR schedule are under way
    ckpt = str(tmp_path / "global_step_1" / "actor")
    wg.save_checkpoint(ckpt, global_step=1)
    saved = full_params(worker.actor_module)
    continued = wg.update_actor(batch).meta_info["metrics"]  # shuffle=True: uses the RNG saved above
    after_continue = full_params(worker.actor_module)

    model_file = torch.load(os.path.join(ckpt, "model_world_size_1_rank_0.pt"), weights_only=False)
    assert model_file and all(is_lora_name(k) for k in model_file)
    optim_file = torch.load(os.path.join(ckpt, "optim_world_size_1_rank_0.pt"), weights_only=False)
    assert set(optim_file["state"]) == set(model_file)  # Adam moments of the adapters only
    base_bytes = sum(t.numel() * t.element_size() for n, t in saved.items() if not is_lora_name(n))
    assert os.path.getsize(os.path.join(ckpt, "model_world_size_1_rank_0.pt")) < base_bytes / 4

    wg.load_checkpoint(ckpt)
    assert all(torch.equal(saved[n], p) for n, p in full_params(worker.actor_module).items())
    replayed = wg.update_actor(batch).meta_info["metrics"]
    assert replayed["actor/pg_loss"] == continued["actor/pg_loss"]
    assert all(torch.equal(after_continue[n], p) for n, p in full_params(worker.actor_module).items())


def test_a_checkpoint_of_other_adapters_is_refused_by_name(cpu_group, lora_run, tiny_model_dir, tmp_path):
    wg, _, _ = lora_run
    ckpt = str(tmp_path / "actor")
    wg.save_checkpoint(ckpt)
    other = ActorRolloutRefWorker(lora_config(tiny_model_dir, target_modules=["q_proj", "v_proj"]),
                                  role="actor_rollout_ref")
    other.init_model()
    with pytest.raises(ValueError, match="does not hold this model's LoRA adapters.*missing"):
        other.load_checkpoint(ckpt)


def test_hf_export_is_the_merged_model_and_the_adapter_folder_loads_in_peft(lora_run, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from verl.model_merger import merge_fsdp_checkpoint

    wg, batch, _ = lora_run
    worker = wg._workers[0]
    wg.update_actor(batch)
    ckpt = str(tmp_path / "actor")
    wg.save_checkpoint(ckpt)  # save_contents has hf_model: huggingface/ holds the merged weights
    export = str(tmp_path / "export")
    wg.export_hf(export, lora_adapter=True)

    merged = AutoModelForCausalLM.from_pretrained(os.path.join(ckpt, "huggingface"), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                                           os.path.join(export, "lora_adapter"))
    ids = batch.batch["input_ids"][:, :8]
    module = worker.actor_module
    with torch.no_grad():
        actor_logits = module(input_ids=ids).logits
        torch.testing.assert_close(merged(input_ids=ids).logits, actor_logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(peft_model(input_ids=ids).logits, actor_logits, atol=1e-6, rtol=0)
    reference = peft_model.merge_and_unload().state_dict()
    for name, tensor in merged.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], atol=1e-6, rtol=0, msg=name)
    exported = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32).state_dict()
    assert all(torch.equal(t, exported[n]) for n, t in merged.state_dict().items())

    # the merger builds the same merged weights from the adapter shards and the base model later
    out = merge_fsdp_checkpoint(ckpt, str(tmp_path / "merged"), save_lora_adapter=True)
    later = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).state_dict()
    assert all(torch.equal(t, later[n]) for n, t in merged.state_dict().items())
    again = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                                      os.path.join(out, "lora_adapter"))
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, actor_logits, atol=1e-6, rtol=0)


def _bf16_lora_actor(model_dir, force_fsdp2: bool):
    """The GPU setting rehearsed on CPU: bf16 compute (fsdp_config.mixed_precision), so a bf16 frozen base."""
    from verl.utils.fsdp_utils import build_device_mesh
    from verl.workers.actor import DataParallelPPOActor
    from verl.workers.sharding import build_fsdp_causal_lm, build_optimizer
    from workers_testlib import actor_config

    fsdp = OmegaConf.create({"mixed_precision": {"param_dtype": "bf16", "reduce_dtype": "fp32"}})
    module = build_fsdp_causal_lm(OmegaConf.create({"path": model_dir, **LORA}), fsdp, build_device_mesh("cpu"), "cpu",
                                  force_fsdp2=force_fsdp2)
    cfg = actor_config()
    return DataParallelPPOActor(cfg, module, build_optimizer(module.parameters(), cfg.optim))


def test_bf16_base_with_fp32_adapters_trains_plain_and_under_fsdp2_and_checkpoints_cross_load(
        cpu_group, tiny_model_dir, tiny_vocab, tmp_path):
    """One rank keeps the plain module (nothing to shard); FSDP2 holds bf16 base and fp32 adapters in one unit and
    computes in bf16. Both train only the adapters, alike; an adapter checkpoint of either loads into the other."""
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
    from verl.utils.fsdp_utils import is_sharded
    from workers_testlib import ppo_batch, with_old_log_probs

    actors = [_bf16_lora_actor(tiny_model_dir, force) for force in (False, True)]
    assert not is_sharded(actors[0].actor_module) and is_sharded(actors[1].actor_module)
    norms = []
    for actor in actors:
        dtypes = {(is_lora_name(n), p.dtype) for n, p in actor.actor_module.named_parameters()}
        assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}
        before = full_params(actor.actor_module)
        data = with_old_log_probs(actor, ppo_batch(vocab_size=tiny_vocab, seed=3), noise=0.3)
        norms.append(actor.update_policy(data)["actor/grad_norm"][0])
        after = full_params(actor.actor_module)
        changed = [n for n in before if not torch.equal(before[n], after[n])]
        assert changed and all(is_lora_name(n) for n in changed)
    assert norms[0] == pytest.approx(norms[1], rel=0.05)  # bf16 compute either way, different cast points

    plain, sharded = actors
    FSDPCheckpointManager(plain.actor_module, plain.actor_optimizer).save_checkpoint(str(tmp_path / "plain"))
    FSDPCheckpointManager(sharded.actor_module, sharded.actor_optimizer).load_checkpoint(str(tmp_path / "plain"))
    expected = full_params(plain.actor_module)
    assert all(torch.equal(expected[n], t) for n, t in full_params(sharded.actor_module).items())


def test_resuming_adapters_on_another_base_model_warns_naming_both(cpu_group, lora_run, tiny_model_dir, tmp_path):
    import shutil

    wg, _, _ = lora_run
    ckpt = str(tmp_path / "actor")
    wg.save_checkpoint(ckpt)
    moved = shutil.copytree(tiny_model_dir, str(tmp_path / "other_base"))
    other = ActorRolloutRefWorker(lora_config(moved), role="actor_rollout_ref")
    other.init_model()
    with pytest.warns(UserWarning, match=f"trained on {tiny_model_dir}, this run's model.path is {moved}"):
        other.load_checkpoint(ckpt)
