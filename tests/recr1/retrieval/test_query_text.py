"""clean_query: any text in, plain bounded text out."""
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from recr1.retrieval.query_text import clean_query, rec_r1_wrap


def test_control_format_and_surrogate_characters_become_spaces():
    assert clean_query("red\x00shoes\u200b\ud800size\t10\n") == "red shoes size 10"


def test_emoji_and_accents_are_kept():
    assert clean_query("café 😀 naïve") == "café 😀 naïve"


def test_long_queries_keep_their_first_terms():
    assert clean_query("a b c d e", max_terms=3) == "a b c"
    assert clean_query("word " * 100_000, max_terms=None, max_chars=50) == " ".join(["word"] * 10)


def test_non_text_inputs():
    assert clean_query(None) == ""
    assert clean_query(42) == "42"
    assert clean_query("   \x01\x02  ") == ""


def test_rec_r1_wrapping():
    assert rec_r1_wrap("red shoes") == "(contents:red shoes)"


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=20))
def test_output_is_clean_bounded_and_idempotent(text, max_terms):
    out = clean_query(text, max_terms=max_terms)
    assert len(out.split()) <= max_terms
    assert out == out.strip() and "  " not in out
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in out)
    out.encode("utf-16")  # crosses into Java
    assert clean_query(out, max_terms=max_terms) == out
