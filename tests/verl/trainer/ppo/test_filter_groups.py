"""verl/trainer/ppo/filter_groups.py: which groups DAPO's dynamic sampling keeps, and how rounds fill a batch."""
import numpy as np
import pytest
import torch

from verl.protocol import DataProto
from verl.trainer.ppo.filter_groups import (GroupCollector, accumulate_round_metrics, kept_rows, sample_metric,
                                            usable_group_count)


def scored_round(groups: dict[str, list[float]], extra_key: str = "tag") -> tuple[DataProto, dict]:
    """A scored round: each group's samples (one score each, placed on the last of 3 response tokens), interleaved as
    the trainer repeats prompts; extras carry '<uid>:<i>' per row so a test can see which rows survived."""
    uids, scores, tags = [], [], []
    for uid, values in groups.items():
        for i, value in enumerate(values):
            uids.append(uid)
            scores.append(value)
            tags.append(f"{uid}:{i}")
    token_scores = torch.zeros(len(scores), 3)
    token_scores[:, -1] = torch.tensor(scores)
    batch = DataProto.from_dict(tensors={"token_level_scores": token_scores, "response_mask": torch.ones(len(scores), 3)},
                                non_tensors={"uid": np.array(uids, dtype=object)})
    return batch, {extra_key: tags}


def test_a_group_is_kept_only_when_its_values_differ():
    uids = np.array(["a", "b", "a", "b", "c", "c", "d"], dtype=object)  # not contiguous; d has one sample
    values = np.array([0.0, 0.0, 1.0, 0.0, 0.1, 0.1, 0.5])
    assert kept_rows(uids, values).tolist() == [True, False, True, False, False, False, True]


def test_identical_non_integer_scores_have_no_spread():
    # np.std, which verl compares with 0, is 1.4e-17 for three 0.1s: it would keep this group
    assert np.std([0.1, 0.1, 0.1]) > 0
    assert not kept_rows(np.array(["g"] * 3, dtype=object), np.array([0.1, 0.1, 0.1])).any()


def test_metrics_come_from_the_reward_tensors_or_the_scorer_extras():
    batch, _ = scored_round({"a": [0.5, 0.25]})
    assert sample_metric(batch, "seq_reward", {}).tolist() == [0.5, 0.25]
    assert sample_metric(batch, "score", {}).tolist() == [0.5, 0.25]  # no "score" extra: the sequence score
    assert sample_metric(batch, "score", {"score": [1, 0]}).tolist() == [1.0, 0.0]
    assert sample_metric(batch, "acc", {"acc": [True, False]}).tolist() == [1.0, 0.0]
    assert sample_metric(batch, "seq_final_reward", {}).tolist() == [0.5, 0.25]
    batch.batch["token_level_rewards"] = batch.batch["token_level_scores"] - 0.125
    assert sample_metric(batch, "seq_final_reward", {}).tolist() == pytest.approx([0.5 - 0.375, 0.25 - 0.375])


def test_an_unknown_or_non_numeric_metric_is_named():
    batch, _ = scored_round({"a": [0.5, 0.25]})
    with pytest.raises(KeyError, match=r"metric='acc'.*extra keys: \['reason'\]"):
        sample_metric(batch, "acc", {"reason": ["hit", "miss"]})
    with pytest.raises(ValueError, match=r"metric='reason'.*must be a number"):
        sample_metric(batch, "reason", {"reason": ["hit", "miss"]})


@pytest.mark.parametrize("groups, n, ranks, usable", [
    (5, 8, 2, 5),  # 8 samples a group always split over 2 ranks
    (5, 3, 2, 4),  # 3 samples a group: an even number of groups
    (7, 3, 4, 4),
    (3, 2, 4, 2),
    (1, 3, 2, 0),
])
def test_usable_group_count_splits_evenly_over_the_ranks(groups, n, ranks, usable):
    assert usable_group_count(groups, n, ranks) == usable
    assert (usable * n) % ranks == 0


def test_rounds_fill_the_batch_with_the_first_groups_with_spread():
    collector = GroupCollector("seq_reward", train_batch_size=3, n=2)
    collector.add(*scored_round({"A": [0, 1], "B": [0, 0], "C": [1, 0.5]}))
    assert collector.need_more() and collector.num_kept == 2
    collector.add(*scored_round({"D": [1, 1], "E": [0, 0.5], "F": [0.25, 0]}))
    assert not collector.need_more()
    batch, extras, metrics = collector.finish()
    assert batch.non_tensor_batch["uid"].tolist() == ["A", "A", "C", "C", "E", "E"]
    assert extras == {"tag": ["A:0", "A:1", "C:0", "C:1", "E:0", "E:1"]}  # the extras follow their rows
    assert batch.batch["token_level_scores"][:, -1].tolist() == [0, 1, 1, 0.5, 0, 0.5]
    assert metrics == {"train/num_gen_batches": 2, "train/num_kept_groups": 3, "train/num_dropped_groups": 2,
                       "train/num_unused_groups": 1}
    assert collector.gen_response_tokens == 12 * 3


def test_the_round_limit_raises_naming_the_keys_and_counts():
    collector = GroupCollector("seq_reward", train_batch_size=3, max_num_gen_batches=2, n=2)
    for groups in ({"A": [0, 1], "B": [0, 0]}, {"C": [1, 1], "D": [0, 0]}):
        assert collector.need_more()
        collector.add(*scored_round(groups))
    assert not collector.need_more() and collector.at_limit()
    with pytest.raises(RuntimeError) as info:
        collector.finish()
    msg = str(info.value)
    for part in ("after 2 generation round(s)", "max_num_gen_batches=2", "1 of data.train_batch_size=3",
                 "metric='seq_reward'", "3 groups had none", "on_exhausted=train"):
        assert part in msg, (part, msg)


def test_no_limit_keeps_asking_for_rounds():
    collector = GroupCollector("seq_reward", train_batch_size=1, max_num_gen_batches=0, n=2)
    for _ in range(50):
        collector.add(*scored_round({"A": [0, 0]}))
    assert collector.need_more() and not collector.at_limit()


def test_on_exhausted_train_keeps_the_groups_that_split_over_the_ranks():
    collector = GroupCollector("seq_reward", train_batch_size=4, max_num_gen_batches=1, on_exhausted="train", n=3,
                               world_size=2)
    collector.add(*scored_round({"A": [0, 1, 0], "B": [0, 0, 0], "C": [1, 0, 0], "D": [2, 0, 1]}))
    batch, _, metrics = collector.finish()
    assert batch.non_tensor_batch["uid"].tolist() == ["A"] * 3 + ["C"] * 3  # 3 kept; 2 x 3 samples split over 2
    assert metrics["train/num_kept_groups"] == 2 and metrics["train/num_unused_groups"] == 1


def test_on_exhausted_train_with_no_usable_group_trains_on_the_last_round_as_generated():
    """A collapsed policy (every group alike) goes on training (zero advantages) instead of stopping the run."""
    collector = GroupCollector("seq_reward", train_batch_size=4, max_num_gen_batches=2, on_exhausted="train", n=3,
                               world_size=2)
    collector.add(*scored_round({"A": [0, 1, 0], "B": [0, 0, 0]}))
    collector.add(*scored_round({"C": [1, 1, 1], "D": [0, 0, 0], "E": [2, 2, 2]}))
    with pytest.warns(UserWarning, match="training on the first 2 groups of the last round as generated"):
        batch, _, metrics = collector.finish()
    assert batch.non_tensor_batch["uid"].tolist() == ["C"] * 3 + ["D"] * 3  # 3 groups: 2 split over 2 ranks
    assert metrics["train/num_kept_groups"] == 0 and metrics["train/num_unused_groups"] == 1


def test_on_exhausted_train_with_nothing_that_splits_over_the_ranks_raises():
    collector = GroupCollector("seq_reward", train_batch_size=4, max_num_gen_batches=1, on_exhausted="train", n=3,
                               world_size=2)
    collector.add(*scored_round({"A": [0, 1, 0]}))
    with pytest.raises(RuntimeError, match="nothing to train on"):
        collector.finish()


def test_bad_on_exhausted_is_named():
    with pytest.raises(ValueError, match="algorithm.filter_groups.on_exhausted='skip'"):
        GroupCollector("seq_reward", 2, on_exhausted="skip")


def test_round_timings_add_up_and_other_metrics_keep_the_last_value():
    total: dict = {}
    accumulate_round_metrics(total, {"timing_s/generate_sequences": 1.5, "rollout/x": 1.0})
    accumulate_round_metrics(total, {"timing_s/generate_sequences": 2.0, "rollout/x": 3.0})
    assert total == {"timing_s/generate_sequences": 3.5, "rollout/x": 3.0}
