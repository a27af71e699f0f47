"""DAPO dynamic sampling in the fit loop (in-process backend): half the prompts can never score, so their groups have
no spread; with algorithm.filter_groups on, none of them reaches the actor update, every update gets
data.train_batch_size groups, the metrics count the rounds, and a resumed run equals the uninterrupted one."""
import json
import os
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import assert_verl_metric_names, toy_overrides, write_toy_parquet  # noqa: E402

from verl.single_controller.base.decorator import Dispatch, register  # noqa: E402
from verl.trainer.main_ppo import load_config, run_ppo  # noqa: E402
from verl.trainer.ppo.ray_trainer import Role  # noqa: E402
from verl.workers.fsdp_workers import ActorRolloutRefWorker  # noqa: E402

N = 8  # samples per prompt (toy_overrides' rollout.n)
PROMPTS = 4  # data.train_batch_size = data.gen_batch_size
VOLATILE_PREFIXES = ("timing_s/", "timing_per_token_ms/", "perf/")


class RecordingWorker(ActorRolloutRefWorker):
    """The real worker (run in this process), recording each update's groups and scores and each generation call."""

    updates: list = []
    generations: list = []

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_actor(self, data):
        groups: dict = {}
        for uid, score in zip(data.non_tensor_batch["uid"], data.batch["token_level_scores"].sum(-1).tolist()):
            groups.setdefault(uid, []).append(score)
        RecordingWorker.updates.append(list(groups.values()))
        return super().update_actor(data)

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def generate_sequences(self, prompts):
        start = time.perf_counter()
        out = super().generate_sequences(prompts)
        RecordingWorker.generations.append((len(prompts), time.perf_counter() - start))
        return out


def half_impossible_overrides(model_dir, work_dir, filtering=True, **extra):
    """12 prompts (3 loader batches of 4, in order), every other one impossible: each batch has 2 groups that can
    never have a spread."""
    train = write_toy_parquet(os.path.join(work_dir, "half_impossible.parquet"), 12, impossible_every=2)
    keys = {"data.train_files": train, "data.shuffle": False, "custom_reward_function.name": "half_impossible_score",
            "trainer.total_training_steps": 3}
    if filtering:
        keys.update({"algorithm.filter_groups.enable": True, "algorithm.filter_groups.metric": "seq_reward",
                     "algorithm.filter_groups.max_num_gen_batches": 10})
    keys.update(extra)
    return toy_overrides(model_dir, work_dir, **keys)


def run_recorded(overrides):
    RecordingWorker.updates, RecordingWorker.generations = [], []
    run_ppo(load_config(overrides), role_worker_mapping={Role.ActorRollout: RecordingWorker})
    return list(RecordingWorker.updates), list(RecordingWorker.generations)


def read_metrics(work_dir):
    with open(os.path.join(work_dir, "ckpt", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def zero_spread(groups):
    return [g for g in groups if max(g) == min(g)]


def test_no_zero_spread_group_reaches_the_update_and_the_batch_is_refilled(tiny_model_dir, tmp_path, one_thread,
                                                                           clean_process):
    plain_updates, _ = run_recorded(half_impossible_overrides(tiny_model_dir, str(tmp_path / "plain"), filtering=False))
    # without filtering the impossible groups (all scores 0) do reach the actor
    assert all(any(max(g) == min(g) == 0 for g in groups) for groups in plain_updates)

    work = str(tmp_path / "filtered")
    updates, generations = run_recorded(half_impossible_overrides(tiny_model_dir, work))
    rows = read_metrics(work)
    assert_verl_metric_names(rows)
    assert [r["step"] for r in rows] == [1, 2, 3] and len(updates) == 3
    for groups in updates:
        assert len(groups) == PROMPTS and all(len(g) == N for g in groups)  # refilled to data.train_batch_size
        assert zero_spread(groups) == []
    rounds = [r["train/num_gen_batches"] for r in rows]
    assert all(k >= 2 for k in rounds)  # each loader batch holds only 2 prompts that can score
    assert len(generations) == sum(rounds) and all(size == PROMPTS * N for size, _ in generations)
    calls = iter(generations)
    for r in rows:
        assert r["train/num_kept_groups"] == PROMPTS
        assert r["train/num_kept_groups"] + r["train/num_dropped_groups"] + r["train/num_unused_groups"] \
            == PROMPTS * r["train/num_gen_batches"]
        assert r["train/num_dropped_groups"] >= 2 * r["train/num_gen_batches"]
        # generation time adds up over the rounds: the driver's timer encloses every call of the step
        step_calls = [next(calls)[1] for _ in range(int(r["train/num_gen_batches"]))]
        assert r["timing_s/gen"] >= sum(step_calls)
        assert r["timing_s/generate_sequences"] > step_calls[-1]  # the workers' own timings add up too
    assert rows[-1]["training/epoch"] >= 1  # 3 loader batches an epoch; the rounds went on into the next epoch
    print(f"\n[filter_groups] rounds per step {rounds}, dropped {[r['train/num_dropped_groups'] for r in rows]}")


def test_round_limit_raises_or_trains_on_the_groups_there_are(tiny_model_dir, tmp_path, one_thread, clean_process):
    one_round = {"algorithm.filter_groups.max_num_gen_batches": 1, "trainer.total_training_steps": 1}
    with pytest.raises(RuntimeError, match=r"max_num_gen_batches=1\), 2 of data.train_batch_size=4 groups"):
        run_recorded(half_impossible_overrides(tiny_model_dir, str(tmp_path / "error"), **one_round))

    work = str(tmp_path / "train")
    updates, _ = run_recorded(half_impossible_overrides(tiny_model_dir, work, **one_round,
                                                        **{"algorithm.filter_groups.on_exhausted": "train"}))
    (groups,) = updates
    assert len(groups) == 2 and zero_spread(groups) == []  # the 2 prompts of the batch that can score
    (row,) = read_metrics(work)
    assert (row["train/num_gen_batches"], row["train/num_kept_groups"], row["train/num_dropped_groups"]) == (1, 2, 2)


def test_resume_with_dynamic_sampling_matches_a_straight_run(tiny_model_dir, tmp_path, one_thread, clean_process):
    """The checkpoint at step 2 comes after the loader has crossed into its second epoch in the middle of a step's
    rounds; the resumed step 3 must read the same prompts and train the same weights."""
    common = {"trainer.save_freq": 2, "actor_rollout_ref.actor.optim.lr": 1e-3,
              "actor_rollout_ref.actor.checkpoint.save_contents": "[model,optimizer,extra,hf_model]"}
    straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
    run_recorded(half_impossible_overrides(tiny_model_dir, straight, **common))
    a = read_metrics(straight)
    pulled = int(a[0]["train/num_gen_batches"] + a[1]["train/num_gen_batches"])  # loader batches
    samples_to_step_2 = PROMPTS * N * pulled
    assert samples_to_step_2 > 2 * PROMPTS * N  # extra rounds happened before the checkpoint

    crash = [f"+custom_reward_function.reward_kwargs.crash_after_samples={samples_to_step_2}"]  # dies in step 3
    with pytest.raises(Exception, match="simulated crash"):
        run_recorded(half_impossible_overrides(tiny_model_dir, interrupted, **common) + crash)
    ckpt_dir = os.path.join(interrupted, "ckpt")
    assert open(os.path.join(ckpt_dir, "latest_checkpointed_iteration.txt")).read() == "2"
    loader = torch.load(os.path.join(ckpt_dir, "global_step_2", "data.pt"), weights_only=False)
    assert (loader["epoch"], loader["batches_done"]) == divmod(pulled, 3)  # every extra batch counted
    run_recorded(half_impossible_overrides(tiny_model_dir, interrupted, **common))  # resume_mode=auto

    b = read_metrics(interrupted)
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        stable = {k: v for k, v in ra.items() if not k.startswith(VOLATILE_PREFIXES)}
        assert stable.keys() == {k for k in rb if not k.startswith(VOLATILE_PREFIXES)}
        for key, value in stable.items():
            assert rb[key] == pytest.approx(value, rel=1e-6, abs=1e-6), (ra["step"], key)
    wa = load_file(os.path.join(straight, "ckpt", "global_step_3", "actor", "huggingface", "model.safetensors"))
    wb = load_file(os.path.join(ckpt_dir, "global_step_3", "actor", "huggingface", "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=key)
