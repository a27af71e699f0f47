"""One rank, no offload, no mixed precision: the workers get the plain HF module (FSDP2 would only add hooks and
DTensor dispatch). Checkpoints of the plain module and of an FSDP2-wrapped one load into each other exactly."""
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

from verl.protocol import DataProto
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
from verl.utils.fsdp_utils import build_device_mesh, full_state_dict, is_sharded
from verl.workers.sharding import build_fsdp_causal_lm, build_optimizer
from verl.workers.sharding.fsdp_model import fsdp2_is_needed
from workers_testlib import actor_config, ppo_batch, with_old_log_probs


def test_fsdp2_only_where_it_does_something(cpu_group):
    mesh = build_device_mesh("cpu")  # one rank
    assert not fsdp2_is_needed(mesh, None, "cpu", torch.float32)
    assert fsdp2_is_needed(mesh, {"mixed_precision": {"param_dtype": "bf16"}}, "cpu", torch.float32)
    assert not fsdp2_is_needed(mesh, {"mixed_precision": {"param_dtype": "bf16"}}, "cpu", torch.bfloat16)
    # on GPU the default is bf16 compute over fp32 master weights: FSDP2 provides that even on one rank
    assert fsdp2_is_needed(mesh, None, "cuda", torch.float32)
    assert fsdp2_is_needed(mesh, {"param_offload": True}, "cuda", torch.bfloat16)


def _trained_actor(model_dir: str, fsdp2: bool):
    from verl.workers.actor import DataParallelPPOActor

    cfg = actor_config()
    module = build_fsdp_causal_lm(OmegaConf.create({"path": model_dir}), None, build_device_mesh("cpu"), "cpu",
                                  force_fsdp2=fsdp2)
    assert is_sharded(module) == fsdp2
    actor = DataParallelPPOActor(cfg, module, build_optimizer(module.parameters(), cfg.optim))
    return actor


def _update(actor, vocab: int) -> None:
    actor.update_policy(with_old_log_probs(actor, ppo_batch(vocab_size=vocab, seed=7), noise=0.2))


def _model_and_optimizer_state(actor) -> tuple[dict, dict]:
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    optim = get_optimizer_state_dict(actor.actor_module, actor.actor_optimizer, options=options)
    return full_state_dict(actor.actor_module), optim["state"]


@pytest.mark.parametrize("saved_by_fsdp2", [True, False], ids=["fsdp2_to_plain", "plain_to_fsdp2"])
def test_one_rank_checkpoints_load_across_plain_and_fsdp2(cpu_group, tiny_model_dir, tiny_vocab, tmp_path,
                                                          saved_by_fsdp2):
    source = _trained_actor(tiny_model_dir, fsdp2=saved_by_fsdp2)
    _update(source, tiny_vocab)
    FSDPCheckpointManager(source.actor_module, source.actor_optimizer).save_checkpoint(str(tmp_path / "ckpt"))

    target = _trained_actor(tiny_model_dir, fsdp2=not saved_by_fsdp2)
    FSDPCheckpointManager(target.actor_module, target.actor_optimizer).load_checkpoint(str(tmp_path / "ckpt"))
    (src_model, src_optim), (dst_model, dst_optim) = map(_model_and_optimizer_state, (source, target))
    assert src_model.keys() == dst_model.keys()
    assert all(torch.equal(src_model[k], dst_model[k]) for k in src_model)
    assert src_optim.keys() == dst_optim.keys()
    for name, state in src_optim.items():
        assert all(torch.equal(state[k], dst_optim[name][k]) for k in state), name

    # the restored optimizer continues identically: one more update from each gives the same parameters
    _update(source, tiny_vocab)
    _update(target, tiny_vocab)
    after_src, after_dst = full_state_dict(source.actor_module), full_state_dict(target.actor_module)
    for key in after_src:
        torch.testing.assert_close(after_dst[key], after_src[key], atol=1e-6, rtol=0, msg=key)


def test_plain_and_fsdp2_modules_score_and_update_alike(cpu_group, tiny_model_dir, tiny_vocab):
    """The same log-probs and, after one update, the same parameters from either form."""
    results = []
    for fsdp2 in (True, False):
        actor = _trained_actor(tiny_model_dir, fsdp2)
        data = ppo_batch(vocab_size=tiny_vocab, seed=9)
        log_probs, _ = actor.compute_log_prob(DataProto(batch=data.batch, meta_info={"micro_batch_size": 4,
                                                                                     "temperature": 0.7}))
        _update(actor, tiny_vocab)
        results.append((log_probs, full_state_dict(actor.actor_module)))
    (lp_fsdp2, params_fsdp2), (lp_plain, params_plain) = results
    torch.testing.assert_close(lp_plain, lp_fsdp2, atol=1e-6, rtol=0)
    for key in params_fsdp2:
        torch.testing.assert_close(params_plain[key], params_fsdp2[key], atol=1e-6, rtol=0, msg=key)
