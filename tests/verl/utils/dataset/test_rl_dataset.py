"""verl/utils/dataset/rl_dataset.py: chat template, left padding, the over-long prompt policy."""
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from verl.protocol import DataProto
from verl.utils.dataset import RLHFDataset, collate_fn


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def write_rows(path, contents):
    rows = [{"data_source": "toy", "prompt": [{"role": "user", "content": c}], "ability": "toy",
             "reward_model": {"style": "rule", "ground_truth": {"target": ["B01", "B02"]}},
             "extra_info": {"split": "train", "index": 100 + i}} for i, c in enumerate(contents)]
    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def data_config(**kw):
    return OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 16, "truncation": "error",
                             "filter_overlong_prompts": False, "return_raw_chat": False, **kw})


def test_items_are_left_padded_chat_prompts(tmp_path, tokenizer):
    ds = RLHFDataset(write_rows(tmp_path / "a.parquet", ["red shoes", "blue"]), tokenizer, data_config())
    item = ds[0]
    ids, mask, pos = item["input_ids"], item["attention_mask"], item["position_ids"]
    assert ids.shape == mask.shape == pos.shape == (16,)
    n = int(mask.sum())
    assert mask.tolist() == [0] * (16 - n) + [1] * n
    assert (ids[: 16 - n] == tokenizer.pad_token_id).all()
    assert pos[16 - n:].tolist() == list(range(n))
    text = tokenizer.decode(ids[16 - n:])
    assert text == tokenizer.apply_chat_template([{"role": "user", "content": "red shoes"}],
                                                 add_generation_prompt=True, tokenize=False)
    assert item["index"] == 100 and item["reward_model"]["ground_truth"]["target"] == ["B01", "B02"]


def test_collated_batch_becomes_a_dataproto(tmp_path, tokenizer):
    ds = RLHFDataset(write_rows(tmp_path / "a.parquet", ["red", "blue", "green"]), tokenizer, data_config())
    batch = DataProto.from_single_dict(collate_fn([ds[i] for i in range(3)]))
    assert len(batch) == 3 and batch.batch["input_ids"].shape == (3, 16)
    assert list(batch.non_tensor_batch["data_source"]) == ["toy"] * 3


LONG = "red " * 40


def test_overlong_prompt_is_an_error_naming_rows_and_limit(tmp_path, tokenizer):
    with pytest.raises(ValueError, match=r"1 of 2 prompts .* longer than data.max_prompt_length=16 tokens \(rows 1;"):
        RLHFDataset(write_rows(tmp_path / "a.parquet", ["red", LONG]), tokenizer, data_config())


def test_overlong_prompts_filtered_with_a_report(tmp_path, tokenizer, capsys):
    ds = RLHFDataset(write_rows(tmp_path / "a.parquet", ["red", LONG, "blue"]), tokenizer,
                     data_config(filter_overlong_prompts=True))
    assert len(ds) == 2 and [ds[i]["index"] for i in range(2)] == [100, 102]
    assert "dropped them; 2 remain" in capsys.readouterr().out


@pytest.mark.parametrize("side", ["left", "right", "middle"])
def test_truncation_keeps_the_right_part(tmp_path, tokenizer, side):
    path = write_rows(tmp_path / "a.parquet", [LONG])
    full = RLHFDataset(path, tokenizer, data_config(max_prompt_length=200)).prompt_ids[0]
    item = RLHFDataset(path, tokenizer, data_config(truncation=side))[0]
    assert item["attention_mask"].all()
    expected = {"left": full[-16:], "right": full[:16], "middle": list(full[:8]) + list(full[-8:])}[side]
    assert item["input_ids"].tolist() == list(expected)


def test_missing_file_and_column_are_named(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        RLHFDataset(str(tmp_path / "nope.parquet"), tokenizer, data_config())
    path = write_rows(tmp_path / "a.parquet", ["red"])
    with pytest.raises(KeyError, match="data.prompt_key='question'"):
        RLHFDataset(path, tokenizer, data_config(prompt_key="question"))
