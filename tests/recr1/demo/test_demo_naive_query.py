"""The SFT target: a naive, target-free answer that the reward parses as well formed."""
import json

import pytest

from recr1.demo.naive_query import content_words, format_response, naive_query, naive_response
from recr1.reward import parse_answer

REQUEST = ("I need a new tent because my old one finally stopped working. I prefer something made of steel. "
           "It has to be foldable, and the tent should be green. Steel is best.")


def test_content_words_drop_stop_words_and_punctuation_and_keep_first_spelling():
    words = content_words(REQUEST)
    assert words[:5] == ["new", "tent", "old", "finally", "stopped"]
    assert "I" not in words and "a" not in words and "the" not in words
    assert words.count("steel") == 1 and "Steel" not in words  # first occurrence only, case-insensitive
    assert all(w.isalnum() for w in words)


def test_naive_query_keeps_the_first_n_content_words_in_order():
    assert naive_query(REQUEST, 3) == "new tent old"
    assert naive_query(REQUEST, 100) == " ".join(content_words(REQUEST))
    with pytest.raises(ValueError, match="n_words"):
        naive_query(REQUEST, 0)


def test_naive_response_is_well_formed_for_the_reward_and_holds_only_request_words():
    response = naive_response(REQUEST, 12)
    parsed = parse_answer(response)
    assert parsed.format_ok and parsed.reason == "ok"
    assert parsed.query == naive_query(REQUEST, 12)
    request_words = {w.lower().strip(".,") for w in REQUEST.split()}
    assert {w.lower() for w in parsed.query.split()} <= request_words


def test_format_response_escapes_json():
    response = format_response('say "hi" \\ there')
    parsed = parse_answer(response)
    assert parsed.format_ok and parsed.query == 'say "hi" \\ there'
    assert json.loads(response.split("<answer>")[1].split("</answer>")[0]) == {"query": 'say "hi" \\ there'}
