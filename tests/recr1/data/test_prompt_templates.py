import pytest

from recr1.data.prompts import PROMPT_TEMPLATES, build_prompt, register_template

REQUEST = 'I need a {"quiet"} keyboard for my office, ideally in black.'


@pytest.mark.parametrize("template", ["sparse", "dense"])
def test_prompt_is_one_user_message_holding_the_request_and_the_answer_format(template):
    messages = build_prompt("  " + REQUEST + "\n", template)
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert REQUEST in content  # braces in the request survive, whitespace around it is trimmed
    assert "<think>" in content and "</think>" in content
    assert "<answer>" in content and '{"query": ' in content and "</answer>" in content


def test_sparse_asks_for_keywords_for_bm25_and_dense_for_a_pseudo_review():
    sparse = build_prompt(REQUEST, "sparse")[0]["content"]
    dense = build_prompt(REQUEST, "dense")[0]["content"]
    assert "BM25" in sparse and "keyword" in sparse
    assert "dense retriever" in dense and "review" in dense


def test_unknown_template_is_named_in_the_error():
    with pytest.raises(KeyError, match="nope"):
        build_prompt(REQUEST, "nope")


def test_registered_template_is_used_and_needs_exactly_one_slot():
    with pytest.raises(ValueError, match="exactly once"):
        register_template("broken", "no slot here")
    register_template("terse_test", "Query for: {request}")
    try:
        assert build_prompt("red mug", "terse_test")[0]["content"] == "Query for: red mug"
    finally:
        PROMPT_TEMPLATES.pop("terse_test")
