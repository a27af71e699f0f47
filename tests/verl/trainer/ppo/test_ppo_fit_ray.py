"""PPO (GAE) on Ray with 2 CPU workers (gloo): actor + rollout + ref and critic colocated, 3 steps, every trainable
parameter changes, verl's metric names, resources given back at the end. (GRPO runs the same worker calls minus the
critic; it is covered in-process by the toy test.) Two trainers side by side in one driver, seeded from trainer.seed."""
import json
import os
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import assert_verl_metric_names, toy_overrides  # noqa: E402

from verl.protocol import DataProto  # noqa: E402
from verl.trainer.main_ppo import create_trainer, load_config, run_ppo  # noqa: E402

RAY = {"trainer.backend": "ray", "trainer.n_gpus_per_node": 2, "trainer.total_training_steps": 3,
       "trainer.balance_batch": True, "+ray_init.include_dashboard": False,
       "actor_rollout_ref.actor.ppo_mini_batch_size": 2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 4,
       "critic.ppo_micro_batch_size_per_gpu": 4, "actor_rollout_ref.rollout.n": 4,
       "actor_rollout_ref.rollout.log_prob_micro_batch_size": 8,  # legacy global key: 4 per worker
       "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": "null"}


@pytest.fixture(scope="module")
def ray_session():
    """A Ray instance for this module (or the one already running), with CPU bundles to spare."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False)
    yield
    if started:
        ray.shutdown()


def weights(path):
    return load_file(os.path.join(path, "model.safetensors"))


def assert_all_changed(before: dict, after: dict, what: str):
    """``after`` has the tensors of ``before`` (no tied lm_head.weight added), each one changed."""
    assert set(before) == set(after)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"{what}: parameters that did not change: {unchanged}"


def all_cpus_free(timeout_s: float = 30.0) -> bool:
    """Whether every CPU of the Ray instance is free again (Ray's resource view lags a removal a little)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]:
            return True
        time.sleep(0.1)
    return False


def steps_logged(work_dir):
    with open(os.path.join(work_dir, "ckpt", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_gae_three_steps_on_two_ray_workers(tiny_model_dir, tmp_path, ray_session):
    work = str(tmp_path)
    run_ppo(load_config(toy_overrides(tiny_model_dir, work, **RAY, **{
        "algorithm.adv_estimator": "gae", "trainer.save_freq": 2, "actor_rollout_ref.actor.use_kl_loss": True,
        "actor_rollout_ref.actor.checkpoint.save_contents": "[model,optimizer,extra,hf_model]",
        "critic.checkpoint.save_contents": "[model,optimizer,extra,hf_model]"})))
    assert all_cpus_free(), "the trainer's actors / placement groups outlived fit()"
    rows = steps_logged(work)
    assert_verl_metric_names(rows)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["critic/grad_norm"] > 0 and r["actor/grad_norm"] > 0 for r in rows)
    assert "critic/vf_explained_var" in rows[-1] and "global_seqlen/balanced_max" in rows[0]
    step = os.path.join(work, "ckpt", "global_step_{}", "{}", "huggingface")
    assert_all_changed(weights(tiny_model_dir), weights(step.format(3, "actor")), "actor")
    # the critic's value head starts random, so compare its step-2 and step-3 checkpoints
    assert_all_changed(weights(step.format(2, "critic")), weights(step.format(3, "critic")), "critic")


def sampled_responses(trainer, rows: int = 4):
    """Responses [rows, R] sampled for ``rows`` copies of one prompt."""
    prompt = DataProto.from_single_dict(trainer.collate_fn([trainer.train_dataset[0]] * rows))
    gen = prompt.select(batch_keys=["input_ids", "attention_mask", "position_ids"])
    gen.meta_info = {"eos_token_id": trainer.tokenizer.eos_token_id, "pad_token_id": trainer.tokenizer.pad_token_id,
                     "do_sample": True}
    return trainer.actor_rollout_wg.generate_sequences(gen).batch["responses"]


def test_trainers_side_by_side_in_one_driver_sample_as_trainer_seed_says(tiny_model_dir, tmp_path, ray_session):
    """Three trainers alive at once (unique Ray names); the same trainer.seed samples the same responses, another
    seed others. (Ranks of one trainer get different seeds: tests/verl/single_controller/test_worker_group_lifecycle.)"""
    trainers = []
    try:
        for i, seed in enumerate((1, 1, 2)):
            config = load_config(toy_overrides(tiny_model_dir, str(tmp_path / f"run{i}"), **{
                **RAY, "trainer.n_gpus_per_node": 1, "algorithm.adv_estimator": "grpo", "trainer.seed": seed}))
            trainers.append(create_trainer(config))
            trainers[-1].init_workers()
        first, again, other = (sampled_responses(t) for t in trainers)
    finally:
        for trainer in trainers:
            trainer.shutdown()
    assert torch.equal(first, again), "the same trainer.seed sampled different responses"
    assert not torch.equal(first, other), "another trainer.seed sampled the same responses"
    assert all_cpus_free()
