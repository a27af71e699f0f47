"""model_eos_token_ids: generation_config.json's EOS list plus the tokenizer's eos, and clear errors for bad files."""
import json
from types import SimpleNamespace

import pytest

from verl.utils.generation_config import model_eos_token_ids


def model_folder(tmp_path, generation_config):
    if generation_config is not None:
        text = generation_config if isinstance(generation_config, str) else json.dumps(generation_config)
        (tmp_path / "generation_config.json").write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize(
    "generation_config, tokenizer_eos, expected",
    [
        ({"eos_token_id": [151645, 151643]}, 151645, [151645, 151643]),  # Qwen2.5-Instruct
        ({"eos_token_id": 151643}, 151645, [151643, 151645]),  # the tokenizer's comes last when it differs
        ({"eos_token_id": [7, 7, 3]}, None, [7, 3]),
        ({"do_sample": True}, 5, [5]),  # the file sets no eos
        (None, 5, [5]),  # no generation_config.json
    ],
)
def test_list_from_generation_config_then_the_tokenizers(tmp_path, generation_config, tokenizer_eos, expected):
    tokenizer = SimpleNamespace(eos_token_id=tokenizer_eos)
    assert model_eos_token_ids(model_folder(tmp_path, generation_config), tokenizer) == expected


def test_the_tiny_models_eos_is_its_tokenizers(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model_eos_token_ids(tiny_model_dir, tokenizer) == [tokenizer.eos_token_id]


@pytest.mark.parametrize(
    "generation_config, tokenizer_eos, message",
    [
        ({"eos_token_id": ["</s>"]}, 1, r"generation_config.json: eos_token_id must be .* got \['</s>'\]"),
        ("{not json", 1, r"generation_config.json: not valid JSON"),
        ({}, None, r"no EOS token id"),
    ],
)
def test_bad_or_missing_ids_are_named(tmp_path, generation_config, tokenizer_eos, message):
    with pytest.raises(ValueError, match=message):
        model_eos_token_ids(model_folder(tmp_path, generation_config), SimpleNamespace(eos_token_id=tokenizer_eos))
