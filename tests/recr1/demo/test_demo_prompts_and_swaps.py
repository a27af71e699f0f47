"""The demo's keyword prompts and the word-swap augmentation of SFT requests."""
import json
import random

import pandas as pd
import pytest

from recr1.demo.augment import product_vocabulary, swap_product_words
from recr1.demo.naive_query import naive_query, request_keywords
from recr1.demo.sft_data import build_sft_file, swapped_sft_frame
from recr1.demo.templates import keyword_prompt, prompt_builder, rewrite_prompts
from recr1.reward import parse_answer

REQUEST = "I need a new Voltrix tent. The Voltrix tent should be green, and made of steel."


def test_keyword_prompt_keeps_content_words_in_order_with_repeats():
    content = keyword_prompt(REQUEST)[0]["content"]
    assert "new Voltrix tent Voltrix tent green made steel" in content
    assert request_keywords(REQUEST) == ["new", "Voltrix", "tent", "Voltrix", "tent", "green", "made", "steel"]
    assert prompt_builder("sparse")(REQUEST)[0]["content"].count(REQUEST) == 1
    with pytest.raises(KeyError, match="unknown prompt template 'nope'"):
        prompt_builder("nope")


def test_rewrite_prompts_changes_only_the_prompt():
    rows = pd.DataFrame({"request": [REQUEST], "prompt": [[{"role": "user", "content": "old"}]], "x": [1]})
    out = rewrite_prompts(rows, "keywords")
    assert out["prompt"][0] == keyword_prompt(REQUEST) and rows["prompt"][0][0]["content"] == "old"
    assert out["request"][0] == REQUEST and out["x"][0] == 1


@pytest.fixture()
def corpus(tmp_path):
    items = [("a", "Voltrix Waterproof Steel Tent, Green, Large. A tent for camping."),
             ("b", "Kidoodle Soft Cotton Blanket, Blue, Mini. Keeps kids warm."),
             ("c", "Gritworks Cordless Steel Drill, Red, Regular. Drills holes.")]
    with open(tmp_path / "part-00000.jsonl", "w") as f:
        for doc_id, text in items:
            f.write(json.dumps({"id": doc_id, "contents": text}) + "\n")
    return tmp_path


def test_product_vocabulary_is_the_title_words(corpus):
    vocab = product_vocabulary(str(corpus))
    assert {"voltrix", "tent", "green", "steel", "blanket", "drill", "regular"} <= set(vocab)
    assert "camping" not in vocab and "holes" not in vocab  # description words are not product words
    assert vocab == sorted(vocab)


def test_swaps_are_consistent_within_a_request_and_keep_other_words(corpus):
    vocab = product_vocabulary(str(corpus))
    swapped = swap_product_words(REQUEST, vocab, random.Random(0))
    words, original = swapped.split(), REQUEST.split()
    assert len(words) == len(original)
    assert words[0:4] == ["I", "need", "a", "new"] and words[6] == "The"
    assert words[4] == words[7]  # "Voltrix" both times -> the same new word, capitalized
    assert words[4][0].isupper() and words[4].lower() in vocab
    assert swapped != REQUEST
    assert swap_product_words(REQUEST, vocab, random.Random(0)) == swapped


def test_swapped_pairs_answer_their_own_swapped_request(corpus, tmp_path):
    rows = pd.DataFrame({"request": [REQUEST] * 3, "data_source": ["amazon_c4_train"] * 3,
                         "prompt": [keyword_prompt(REQUEST)] * 3})
    frame = swapped_sft_frame(rows, product_vocabulary(str(corpus)), copies=2, seed=1, prompt_fn=keyword_prompt)
    assert len(frame) == 6 and set(frame["data_source"]) == {"amazon_c4_train_swapped"}
    for _, pair in frame.iterrows():
        assert pair["prompt"] == keyword_prompt(pair["request"])
        assert parse_answer(pair["response"]).query == naive_query(pair["request"])
    with pytest.raises(ValueError, match="need a prompt template"):
        swapped_sft_frame(rows, ["x"], copies=1, seed=0)
    rows.to_parquet(tmp_path / "train.parquet")
    assert build_sft_file(str(tmp_path / "train.parquet"), str(tmp_path / "sft.parquet"), template="keywords",
                          swapped_copies=2, corpus=str(corpus)) == 9
    with pytest.raises(ValueError, match="--corpus"):
        build_sft_file(str(tmp_path / "train.parquet"), str(tmp_path / "sft2.parquet"), swapped_copies=1)
