import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from verl.utils.tiny_model import (
    DEFAULT_CORPUS,
    FORMAT_TOKENS,
    build_tiny_qwen2,
    build_tokenizer,
    main,
    read_corpus,
)

RESPONSE = '<think>x y</think><answer>{"query": "red shoes"}</answer>'
ROUND_TRIP_TEXTS = [
    RESPONSE,
    '<think>\nThe user wants  light shoes.</think>\n<answer> {"query":"Trail running shoes, size 9"} </answer>',
    "Looking for a gift for my sister who loves hiking and camping in the mountains.",
    "Ünïcode ✓, tabs\tand\nnew lines; unseen words like zyzzyva",
]


@pytest.fixture(scope="module", params=["word", "bpe"])
def tokenizer(request):
    return build_tokenizer(DEFAULT_CORPUS, kind=request.param, vocab_size=None if request.param == "word" else 400)


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_decode_encode_round_trips_exactly(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_format_tags_are_whole_non_special_tokens_and_chat_tokens_are_special(tokenizer):
    for tag in FORMAT_TOKENS:
        assert len(tokenizer.encode(tag, add_special_tokens=False)) == 1, tag
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    chat = "<|im_start|>user\nhi<|im_end|>\n"
    assert tokenizer.decode(tokenizer.encode(chat, add_special_tokens=False), skip_special_tokens=True) == "user\nhi\n"


def test_word_tokenizer_keeps_corpus_words_whole_including_right_after_a_quote():
    tok = build_tokenizer(DEFAULT_CORPUS, kind="word")
    pieces = tok.convert_ids_to_tokens(tok.encode('{"query": "running shoes"}', add_special_tokens=False))
    assert pieces == ['{"', "query", '":', 'Ġ"', "running", "Ġshoes", '"}']
    sentence = "I need comfortable shoes for long runs on the road"
    assert len(tok.encode(sentence, add_special_tokens=False)) == len(sentence.split())


def test_word_vocab_size_limits_whole_words_but_text_still_round_trips():
    small = build_tokenizer(DEFAULT_CORPUS, kind="word", vocab_size=10)
    large = build_tokenizer(DEFAULT_CORPUS, kind="word", vocab_size=2000)
    assert len(small) < len(large)
    text = "Waterproof hiking boots for men"
    assert len(small.encode(text, add_special_tokens=False)) > len(large.encode(text, add_special_tokens=False))
    assert small.decode(small.encode(text, add_special_tokens=False)) == text


def test_chat_template_is_chatml(tokenizer):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "red shoes"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nred shoes<|im_end|>\n<|im_start|>assistant\n"


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="kind"):
        build_tokenizer(DEFAULT_CORPUS, kind="char")
    with pytest.raises(ValueError, match="empty"):
        build_tokenizer(["", "  "])
    tok = build_tokenizer(DEFAULT_CORPUS[:3])
    with pytest.raises(ValueError, match="head_dim"):
        build_tiny_qwen2(tok, hidden=64, heads=4)


def test_fixture_folder_reloads_with_auto_classes_and_matches_a_fresh_build(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    fresh_tok = build_tokenizer(DEFAULT_CORPUS, kind="word")
    for text in ROUND_TRIP_TEXTS:
        assert tok.encode(text) == fresh_tok.encode(text)
        assert tok.decode(tok.encode(text), skip_special_tokens=True) == text
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == ("qwen2", 2, 64, 2)
    assert cfg.hidden_size // cfg.num_attention_heads >= 32
    assert cfg.vocab_size == len(tok) and cfg.eos_token_id == tok.eos_token_id and cfg.pad_token_id == tok.pad_token_id
    # same seed -> same weights: the saved model equals a fresh build
    fresh = build_tiny_qwen2(fresh_tok, layers=2, hidden=64, heads=2, seed=0)
    for name, param in fresh.state_dict().items():
        assert torch.equal(param, model.state_dict()[name]), name
    other = build_tiny_qwen2(fresh_tok, layers=2, hidden=64, heads=2, seed=1)
    assert not torch.equal(other.model.embed_tokens.weight, fresh.model.embed_tokens.weight)
    prompt = tok.apply_chat_template([{"role": "user", "content": "red shoes"}], add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[0] == 1 and ids.shape[1] < out.shape[1] <= ids.shape[1] + 5


def test_demo_sized_model_has_about_half_a_million_parameters():
    syllables = ["ka", "lo", "mi", "nu", "pe", "ro", "si", "tu", "va", "ze"]
    words = [a + b + c for a in syllables for b in syllables for c in syllables[:3]]  # 300 distinct words
    corpus = [" ".join(words[i : i + 10]) for i in range(0, 300, 5)]
    tok = build_tokenizer(corpus, kind="word", vocab_size=400)
    model = build_tiny_qwen2(tok, layers=3, hidden=128, heads=4)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.4e6 < n_params < 0.8e6, n_params
    ids = tok.encode("kakaka lolomi mimimi", add_special_tokens=False)
    assert len(ids) == 3  # every corpus word is one token
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, 3, len(tok))


def test_cli_builds_a_loadable_folder_from_jsonl(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": i, "contents": t}) for i, t in enumerate(DEFAULT_CORPUS)) + "\n")
    out = tmp_path / "model"
    main(["--corpus", str(corpus), "--out", str(out), "--layers", "1", "--hidden", "64", "--heads", "2",
          "--tokenizer", "bpe", "--vocab-size", "400"])
    assert "parameters" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.num_hidden_layers == 1 and model.config.vocab_size == len(AutoTokenizer.from_pretrained(str(out)))


def test_read_corpus_text_and_jsonl_and_bad_rows(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("first line\n\nsecond line\n")
    assert read_corpus(str(txt)) == ["first line", "second line"]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "a"}\n{"contents": "b"}\n{"title": "c"}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:3"):
        read_corpus(str(jsonl))
    with pytest.raises(FileNotFoundError):
        read_corpus(str(tmp_path / "missing.txt"))
