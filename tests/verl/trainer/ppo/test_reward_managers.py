"""Reward managers (naive, batch), the data_source registry and loading the reward from config."""
import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from verl.protocol import DataProto
from verl.trainer.ppo.reward import compute_reward, load_reward_manager
from verl.workers.reward_manager import BatchRewardManager, NaiveRewardManager, RewardFunctionError

RESPONSE_LEN = 6


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def make_batch(tokenizer, responses, truths, sources=None):
    """A generated batch: left-padded prompt 'say', right-padded responses with EOS after each."""
    prompt = tokenizer.encode("say")
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    rows, masks = [], []
    for text in responses:
        ids = (tokenizer.encode(text) + [eos])[:RESPONSE_LEN]
        masks.append([1] * len(ids) + [0] * (RESPONSE_LEN - len(ids)))
        rows.append(ids + [pad] * (RESPONSE_LEN - len(ids)))
    b = len(responses)
    prompts = torch.tensor([prompt] * b)
    resp = torch.tensor(rows)
    response_mask = torch.tensor(masks)
    attention_mask = torch.cat([torch.ones_like(prompts), response_mask], dim=1)
    sources = sources or ["toy"] * b
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": resp, "response_mask": response_mask,
                 "attention_mask": attention_mask, "input_ids": torch.cat([prompts, resp], 1)},
        non_tensors={"data_source": sources, "reward_model": [{"ground_truth": t} for t in truths],
                     "extra_info": [{"index": i} for i in range(b)]})


def count_word(data_source, solution_str, ground_truth, extra_info=None, bonus=0.0):
    return solution_str.split().count(ground_truth) + bonus


def test_naive_puts_the_score_on_the_last_response_token(tokenizer):
    batch = make_batch(tokenizer, ["red red", "blue", "red"], ["red", "red", "red"])
    reward = NaiveRewardManager(tokenizer, 0, count_word)(batch)
    lengths = batch.batch["response_mask"].sum(-1)
    assert reward.shape == (3, RESPONSE_LEN)
    assert reward.sum(-1).tolist() == [2.0, 0.0, 1.0]
    for i, n in enumerate(lengths.tolist()):
        assert reward[i, n - 1] == reward[i].sum()  # all of it on the last valid token (the EOS)


def test_naive_passes_reward_kwargs(tokenizer):
    batch = make_batch(tokenizer, ["red"], ["red"])
    assert NaiveRewardManager(tokenizer, 0, count_word, bonus=0.5)(batch).sum().item() == 1.5


def test_batch_manager_calls_once_and_collects_extras(tokenizer):
    calls = []

    def score_batch(data_sources, solution_strs, ground_truths, extra_infos, k=1):
        calls.append(len(solution_strs))
        return [{"score": s.split().count(g) * k, "format_ok": True, "reason": "ok" if g in s else "miss"}
                for s, g in zip(solution_strs, ground_truths)]

    batch = make_batch(tokenizer, ["red red", "blue", "red"], ["red", "red", "blue"])
    out = BatchRewardManager(tokenizer, 0, score_batch, k=2)(batch, return_dict=True)
    assert calls == [3]
    assert out["reward_tensor"].sum(-1).tolist() == [4.0, 0.0, 0.0]
    assert out["reward_extra_info"]["reason"] == ["ok", "miss", "miss"]


def test_a_raising_scorer_names_the_sample_and_data_source(tokenizer):
    def picky(data_source, solution_str, ground_truth, extra_info=None):
        if "blue" in solution_str:
            raise ValueError("cannot score blue")
        return 1.0

    batch = make_batch(tokenizer, ["red", "blue"], ["red", "red"], sources=["a", "b"])
    with pytest.raises(RewardFunctionError, match=r"sample 1 \(data_source='b'\).*cannot score blue"):
        NaiveRewardManager(tokenizer, 0, picky)(batch)

    def picky_batch(data_sources, solution_strs, ground_truths, extra_infos):
        return [picky(d, s, g) for d, s, g in zip(data_sources, solution_strs, ground_truths)]

    with pytest.raises(RewardFunctionError, match=r"sample 1 \(data_source='b'\)"):
        BatchRewardManager(tokenizer, 0, picky_batch)(batch)


def _config(**sections):
    base = {"data": {"reward_fn_key": "data_source"}, "reward_model": {"reward_manager": "naive",
                                                                         "data_source_scorers": {}},
            "custom_reward_function": {"path": None, "name": "compute_score", "reward_kwargs": {}}}
    for key, value in sections.items():
        base[key].update(value)
    return OmegaConf.create(base)


def test_custom_reward_file_with_kwargs(tokenizer, tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None, scale=1):\n"
                    "    return scale * len(solution_str.split())\n")
    cfg = _config(custom_reward_function={"path": str(path), "reward_kwargs": {"scale": 3}})
    reward, extra = compute_reward(make_batch(tokenizer, ["a b"], ["x"]), load_reward_manager(cfg, tokenizer, 0))
    assert reward.sum().item() == 6.0 and extra == {}


def test_registry_by_data_source_pattern_groups_batch_calls(tokenizer):
    here = os.path.dirname(os.path.abspath(__file__))
    lib = os.path.join(os.path.dirname(here), "trainer_testlib.py")
    cfg = _config(reward_model={"reward_manager": "batch",
                                "data_source_scorers": {"toy_*": f"{lib}:toy_compute_score_batch"}})
    manager = load_reward_manager(cfg, tokenizer, 0)
    batch = make_batch(tokenizer, ["red red", "blue"], ["red", "red"], sources=["toy_a", "toy_b"])
    reward, extra = compute_reward(batch, manager)
    assert reward.sum(-1).tolist() == [1.0, 0.0] and extra["hit"] == [1.0, 0.0]
    with pytest.raises(RewardFunctionError, match="sample 0 .*no reward function for data_source='other'"):
        manager(make_batch(tokenizer, ["red"], ["red"], sources=["other"]))


OVERLONG = {"enable": True, "len": 4, "penalty_factor": 0.5, "log": True}


@pytest.mark.parametrize("kind", ["naive", "batch"])
def test_overlong_penalty_ramps_over_the_buffer(tokenizer, kind):
    """DAPO's overlong penalty, max_resp_len 6, buffer 4 (expected length 2), factor 0.5: lengths 2, 4, 6 (EOS
    included; the last is cut at 6 tokens) lose 0, 2/4*0.5 and 4/4*0.5 on the token that carries the score."""
    batch = make_batch(tokenizer, ["red", "red red red", "red red red red red red"], ["red"] * 3)
    assert batch.batch["response_mask"].sum(-1).tolist() == [2, 4, 6]
    if kind == "naive":
        manager = NaiveRewardManager(tokenizer, 0, count_word, max_resp_len=RESPONSE_LEN, overlong_buffer_cfg=OVERLONG)
    else:
        def count_batch(data_sources, solution_strs, ground_truths, extra_infos):
            return [count_word(d, s, g) for d, s, g in zip(data_sources, solution_strs, ground_truths)]

        manager = BatchRewardManager(tokenizer, 0, count_batch, max_resp_len=RESPONSE_LEN, overlong_buffer_cfg=OVERLONG)
    out = manager(batch, return_dict=True)
    reward = out["reward_tensor"]
    assert reward.sum(-1).tolist() == [1.0, 2.75, 5.5]
    assert reward[1, 3] == 2.75 and reward[2, 5] == 5.5  # on the last valid token, with the score
    assert out["reward_extra_info"]["overlong_reward"] == [0.0, -0.25, -0.5]
    assert out["reward_extra_info"]["overlong"] == [False, True, True]


def test_overlong_penalty_from_config_and_without_log(tokenizer):
    """load_reward_manager reads reward_model.overlong_buffer and data.max_response_length; log=False applies the
    penalty without the extras; enable=False leaves scores alone."""
    batch = make_batch(tokenizer, ["red", "red red red red red red"], ["red"] * 2)
    cfg = _config(data={"max_response_length": RESPONSE_LEN},
                  reward_model={"overlong_buffer": {**OVERLONG, "len": 2, "penalty_factor": 1.0, "log": False}})
    cfg.custom_reward_function.path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                   "trainer_testlib.py")
    cfg.custom_reward_function.name = "toy_compute_score"
    reward, extra = compute_reward(batch, load_reward_manager(cfg, tokenizer, 0))
    assert reward.sum(-1).tolist() == [1.0, 0.0] and extra == {}  # 6 tokens: 2 past expected 4, -2/2 * 1.0
    cfg.reward_model.overlong_buffer.enable = False
    reward, _ = compute_reward(batch, load_reward_manager(cfg, tokenizer, 0))
    assert reward.sum(-1).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("section, match", [
    ({"enable": True, "len": 6, "penalty_factor": 1.0}, r"overlong_buffer.len=6 must be > 0 and < "
                                                         r"data.max_response_length=6"),
    ({"enable": True, "len": 0, "penalty_factor": 1.0}, r"overlong_buffer.len=0 must be > 0"),
    ({"enable": True, "len": 2, "penalty_factor": -1.0}, r"overlong_buffer.penalty_factor=-1.0 must be >= 0"),
    ({"enable": True, "len": 2.5, "penalty_factor": 1.0}, r"overlong_buffer.len=2.5 must be an integer"),
])
def test_overlong_buffer_bad_values_are_named(tokenizer, section, match):
    with pytest.raises(ValueError, match=match):
        NaiveRewardManager(tokenizer, 0, count_word, max_resp_len=RESPONSE_LEN, overlong_buffer_cfg=section)
