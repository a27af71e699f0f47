"""verl/trainer/ppo/metric_utils.py and seqlen_balancing.py on a hand-made batch."""
import numpy as np
import pytest
import torch

from verl.protocol import DataProto
from verl.trainer.ppo.metric_utils import (compute_data_metrics, compute_group_metrics, compute_reward_extra_metrics,
                                           compute_throughout_metrics, compute_timing_metrics, pop_worker_metrics,
                                           process_validation_metrics, reduce_metrics)
from verl.trainer.ppo.seqlen_balancing import balance_order, balanced_partitions


def finished_batch():
    # 2 samples, prompt length 2 (one left pad), response length 3 (lengths 3 and 1)
    attention_mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    response_mask = attention_mask[:, 2:]
    scores = torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    return DataProto.from_dict(tensors={
        "responses": torch.zeros(2, 3, dtype=torch.long), "attention_mask": attention_mask,
        "response_mask": response_mask, "token_level_scores": scores, "token_level_rewards": scores - 0.1,
        "advantages": torch.tensor([[1.0, 1.0, 1.0], [-1.0, 9.0, 9.0]]),
        "returns": torch.tensor([[1.0, 1.0, 1.0], [0.5, 9.0, 9.0]]),
        "values": torch.tensor([[0.5, 0.5, 0.5], [0.5, 9.0, 9.0]])})


def test_data_metrics_use_verl_names_and_mask_padding():
    m = compute_data_metrics(finished_batch(), use_critic=True)
    assert m["critic/score/mean"] == pytest.approx(0.75)
    assert m["critic/rewards/mean"] == pytest.approx(0.45)
    assert m["critic/advantages/max"] == 1.0 and m["critic/advantages/min"] == -1.0  # 9.0 is padding
    assert m["response_length/mean"] == 2.0 and m["response_length/clip_ratio"] == 0.5
    assert m["prompt_length/max"] == 2 and m["prompt_length/min"] == 1
    assert "critic/vf_explained_var" in m and m["critic/values/max"] == 0.5


def test_reason_fractions_do_not_depend_on_the_batch_size():
    """The same mix of reasons in a batch twice as large gives the same values (fractions of the samples that
    report a reason; rows without one, e.g. from another data_source, are left out)."""
    small = compute_reward_extra_metrics({"reason": ["hit", "miss", "miss", "bad_json"]})
    large = compute_reward_extra_metrics({"reason": ["hit", "miss", "miss", "bad_json"] * 2 + [None]})
    assert small == large == {"reward/reason/hit": 0.25, "reward/reason/miss": 0.5, "reward/reason/bad_json": 0.25}
    assert compute_reward_extra_metrics({"overlong": [True, False, False, False]}) == {"reward/overlong/mean": 0.25}


def test_zero_spread_groups_are_the_prompts_whose_samples_all_scored_the_same():
    # groups a (all 0), b (0 and 1), c (all 0.5), d (a single sample: not a group that can have a spread)
    scores = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 7.0])
    uids = ["a", "a", "b", "b", "c", "c", "c", "d"]
    assert compute_group_metrics(scores, uids) == {"critic/score/zero_spread_group_frac": pytest.approx(2 / 3)}
    assert compute_group_metrics(torch.tensor([0.0, 1.0]), ["a", "b"]) == {}  # rollout.n = 1: no groups
    with pytest.raises(ValueError, match="3 uids for 2 scores"):
        compute_group_metrics(torch.tensor([0.0, 1.0]), ["a", "a", "b"])
    batch = finished_batch()  # the two samples score 1.0 and 0.5
    batch.non_tensor_batch["uid"] = np.array(["p", "p"], dtype=object)
    assert compute_data_metrics(batch)["critic/score/zero_spread_group_frac"] == 0.0
    batch.batch["token_level_scores"] = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert compute_data_metrics(batch)["critic/score/zero_spread_group_frac"] == 1.0


def test_timing_and_throughput():
    batch = finished_batch()
    batch.meta_info["global_token_num"] = [4, 3]
    timing = {"gen": 0.5, "update_actor": 1.0, "step": 2.0}
    t = compute_timing_metrics(batch, timing)
    assert t["timing_s/gen"] == 0.5 and t["timing_per_token_ms/gen"] == pytest.approx(0.5 * 1000 / 4)
    p = compute_throughout_metrics(batch, timing, n_gpus=2)
    assert p["perf/total_num_tokens"] == 7 and p["perf/throughput"] == pytest.approx(7 / 4)


def test_worker_timings_are_logged_as_timing_s_and_leave_the_output():
    """Ranks' metrics (concatenated into lists) are averaged; worker timings in any of the accepted forms
    (meta_info["timing"], timing_s/<name>, an older rollout's timing/<name>) become timing_s/<name>."""
    out = DataProto(meta_info={
        "metrics": {"actor/pg_loss": [1.0, 3.0], "timing/sync_weights": [0.2, 0.4],
                    "timing_s/generate_sequences": [1.0, 2.0]},
        "timing": {"reshard": 0.5}, "temperature": 0.7})
    assert pop_worker_metrics(out) == {"actor/pg_loss": 2.0, "timing_s/sync_weights": pytest.approx(0.3),
                                       "timing_s/generate_sequences": 1.5, "timing_s/reshard": 0.5}
    assert out.meta_info == {"temperature": 0.7}
    assert pop_worker_metrics(out) == {}


def test_reduce_extra_and_validation_metrics():
    assert reduce_metrics({"actor/pg_loss": [1.0, 3.0], "actor/lr": 0.1}) == {"actor/pg_loss": 2.0, "actor/lr": 0.1}
    extra = compute_reward_extra_metrics({"ndcg": [0.5, 1.0, None], "reason": ["ok", "bad_json", "ok"],
                                          "query": ["red shoes", "blue hat", "red shoes"]})
    # free text (the query) is per-sample data, not one metric series per distinct string; reasons are fractions
    assert extra == {"reward/ndcg/mean": 0.75, "reward/ndcg/max": 1.0, "reward/ndcg/min": 0.5,
                     "reward/reason/ok": pytest.approx(2 / 3), "reward/reason/bad_json": pytest.approx(1 / 3)}
    assert compute_reward_extra_metrics({"query": ["a", "b"]}, categorical_keys=("query",)) == {
        "reward/query/a": 0.5, "reward/query/b": 0.5}
    val = process_validation_metrics(["a", "b", "a"], [1.0, 0.0, 0.0], {"ndcg": [1.0, 0.2, 0.0]})
    assert val == {"val-core/a/reward/mean": 0.5, "val-aux/a/ndcg/mean": 0.5,
                   "val-core/b/reward/mean": 0.0, "val-aux/b/ndcg/mean": 0.2}


def test_query_statistics_aggregate_with_max_and_bool_fractions():
    extra = compute_reward_extra_metrics({"query_terms": [3, 7, None, 2], "query_op_and": [True, False, None, False]})
    assert extra == {"reward/query_terms/mean": 4.0, "reward/query_terms/max": 7.0, "reward/query_terms/min": 2.0,
                     "reward/query_op_and/mean": pytest.approx(1 / 3)}


def test_validation_core_extras_and_reason_fractions_per_data_source():
    extra = {"ndcg@10": [1.0, 0.0, 0.5, 0.25], "format_ok": [True, False, True, True], "k": [100] * 4,
             "reason": ["hit", "bad_json", "hit", "miss"], "query": ["a", None, "b", "c"]}
    val = process_validation_metrics(["x", "x", "y", "y"], [1.1, -2.0, 0.6, 0.0], extra,
                                     core_keys=("ndcg@10", "format_ok"), categorical_keys=("reason",))
    assert val == {"val-core/x/reward/mean": pytest.approx(-0.45), "val-core/x/ndcg@10": 0.5,
                   "val-core/x/format_ok": 0.5, "val-aux/x/k/mean": 100.0, "val-aux/x/reason/hit": 0.5,
                   "val-aux/x/reason/bad_json": 0.5,
                   "val-core/y/reward/mean": pytest.approx(0.3), "val-core/y/ndcg@10": 0.375,
                   "val-core/y/format_ok": 1.0, "val-aux/y/k/mean": 100.0, "val-aux/y/reason/hit": 0.5,
                   "val-aux/y/reason/miss": 0.5}
    with pytest.raises(ValueError, match="val_core_extra_keys names 'ndcg@50'.*'ndcg@10'"):
        process_validation_metrics(["x"] * 4, [0.0] * 4, extra, core_keys=("ndcg@50",))
    # patterns: the names a task's cut-off gives (ndcg@100 for products, ndcg@50 for sequential recommendation)
    assert process_validation_metrics(["x"] * 4, [0.0] * 4, extra, core_keys=("ndcg@*",)) == \
        process_validation_metrics(["x"] * 4, [0.0] * 4, extra, core_keys=("ndcg@10",))
    with pytest.raises(ValueError, match="'query'"):
        process_validation_metrics(["x"] * 4, [0.0] * 4, extra, core_keys=("query",))


def test_balanced_partitions_have_equal_sizes_and_close_sums():
    lengths = [10, 9, 8, 7, 1, 2, 3, 4]  # rank 0 would get 34 tokens, rank 1 only 10
    groups = balanced_partitions(lengths, 2)
    assert sorted(i for g in groups for i in g) == list(range(8)) and all(len(g) == 4 for g in groups)
    sums = [sum(lengths[i] for i in g) for g in groups]
    assert abs(sums[0] - sums[1]) <= 2
    order, m = balance_order(torch.tensor([[1] * n + [0] * (10 - n) for n in lengths]), 2)
    assert m["global_seqlen/minmax_diff"] == 24
    assert m["global_seqlen/balanced_max"] - m["global_seqlen/balanced_min"] <= 2
    assert order[:4] == groups[0] or order[:4] == groups[1]


def test_generation_time_per_token_counts_every_generated_token():
    """Dynamic sampling generates more rounds than it trains on: gen time is per token generated, not per token
    trained on."""
    batch = finished_batch()  # 4 response tokens
    batch.meta_info["num_gen_response_tokens"] = 10
    t = compute_timing_metrics(batch, {"gen": 0.5, "update_actor": 1.0})
    assert t["timing_per_token_ms/gen"] == pytest.approx(0.5 * 1000 / 10)
    assert t["timing_per_token_ms/update_actor"] == pytest.approx(1000 / 7)  # the trained batch's 3 + 4 tokens
