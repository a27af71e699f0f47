"""The evaluation CLI end to end: the raw-request baseline and a (tiny, untrained) checkpoint."""
import json
import os

import pandas as pd
import pytest

from recr1.data.records import make_row, write_rows
from recr1.eval import main as eval_main
from recr1.eval import evaluate, load_requests

REQUESTS = [
    ("amazon_c4_Baby_test", "I want red leather running shoes for my morning runs", ["shoe-red"]),
    ("amazon_c4_Baby_test", "looking for a vintage brass compass for hiking", ["tie-m"]),
    ("amazon_c4_Office_test", "a good stainless steel kitchen knife please", ["knife-steel"]),
]


@pytest.fixture(scope="module")
def test_parquet(tmp_path_factory) -> str:
    rows = [
        make_row(data_source=source, request=request, target=target, split="test", index=i, qid=f"q{i}",
                 category=source.split("_")[2])  # fmt: skip
        for i, (source, request, target) in enumerate(REQUESTS)
    ]
    path = str(tmp_path_factory.mktemp("eval_data") / "test.parquet")
    write_rows(rows, path)
    return path


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_raw_request_baseline_with_bm25(test_parquet, lucene_index_dir, tmp_path):
    table = evaluate(test_parquet, lucene_index_dir, "bm25", str(tmp_path))
    assert list(table) == ["amazon_c4_Baby_test", "amazon_c4_Office_test", "all"]
    baby = table["amazon_c4_Baby_test"]
    # shoe-red ranks 1st (NDCG 1); tie-m ranks 2nd of three identical items (NDCG 1/log2(3)).
    assert baby["n"] == 2 and baby["ndcg@10"] == pytest.approx((1 + 1 / 1.5849625007) / 2)
    assert table["amazon_c4_Office_test"]["ndcg@100"] == 1.0 and table["all"]["recall@100"] == 1.0
    assert baby["format_ok"] is None
    records = read_jsonl(tmp_path / "requests.jsonl")
    assert [r["rank"] for r in records] == [1, 2, 1] and records[0]["query"] == REQUESTS[0][1]
    assert records[0]["top10"][0] == "shoe-red" and records[0]["qid"] == "q0"
    markdown = (tmp_path / "metrics.md").read_text()
    assert "| amazon_c4_Office_test | 1 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | - |" in markdown
    assert json.loads((tmp_path / "metrics.json").read_text())["table"]["all"]["n"] == 3


def test_dense_baseline(test_parquet, dense_index_dir, tmp_path):
    table = evaluate(test_parquet, dense_index_dir, "dense", str(tmp_path))
    assert table["all"]["n"] == 3 and table["amazon_c4_Office_test"]["ndcg@10"] > 0


def test_checkpoint_generation_is_scored(test_parquet, lucene_index_dir, tiny_model_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    eval_main(["--data", test_parquet, "--index", lucene_index_dir, "--retriever", "bm25", "--model", tiny_model_dir,
               "--out", out, "--max-new-tokens", "12", "--batch-size", "2"])  # fmt: skip
    records = read_jsonl(os.path.join(out, "requests.jsonl"))
    assert len(records) == 3
    for record in records:
        assert isinstance(record["response"], str) and isinstance(record["format_ok"], bool)
        assert 0.0 <= record["ndcg@100"] <= 1.0
    table = json.loads(open(os.path.join(out, "metrics.json")).read())["table"]
    assert 0.0 <= table["all"]["format_ok"] <= 1.0
    assert "| all | 3 |" in capsys.readouterr().out


def test_bad_data_file_is_named(tmp_path, lucene_index_dir):
    path = str(tmp_path / "bad.parquet")
    pd.DataFrame({"data_source": ["x"], "prompt": ["hi"]}).to_parquet(path)
    with pytest.raises(SystemExit, match="missing column.*reward_model"):
        eval_main(["--data", path, "--index", lucene_index_dir, "--retriever", "bm25", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="data file not found"):
        eval_main(["--data", str(tmp_path / "none.parquet"), "--index", lucene_index_dir, "--retriever", "bm25",
                   "--out", str(tmp_path / "o")])  # fmt: skip


# ---- sampling parity with the training rollout (issue 13, item 4) --------------------------------------------------

RESPONSE_LENGTH = 12


@pytest.fixture(scope="module")
def instruct_like_model(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny model with a Qwen2.5-Instruct-like generation_config.json: EOS ids [<|im_end|>, <|endoftext|>],
    do_sample / top_k / top_p defaults and a repetition penalty."""
    from transformers import AutoTokenizer

    from generation_testlib import with_generation_config

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    return with_generation_config(tiny_model_dir, str(tmp_path_factory.mktemp("instruct") / "model"), eos)


def checkpoint_defaults_greedy(model_dir: str, prompts: list) -> list[list[int]]:
    """``model.generate`` with only do_sample=False given: the checkpoint's generation_config supplies the rest."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    answers = []
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=RESPONSE_LENGTH,
                             do_sample=False)  # fmt: skip
        answers.append(out[0, ids.shape[1] :].tolist())
    return answers


def test_cli_answers_exactly_as_the_training_rollout(test_parquet, lucene_index_dir, instruct_like_model, tmp_path):
    """``--engine hf`` (greedy by default) writes the responses the training rollout generates greedily for the same
    rows, although the checkpoint's generation_config asks for a repetition penalty that would change them."""
    from transformers import AutoTokenizer

    from generation_testlib import training_rollout_greedy

    prompts = [row["prompt"] for row in load_requests(test_parquet)]
    expected = training_rollout_greedy(instruct_like_model, prompts, RESPONSE_LENGTH, str(tmp_path))
    assert checkpoint_defaults_greedy(instruct_like_model, prompts) != expected  # the penalty matters here
    out = str(tmp_path / "run")
    eval_main(["--data", test_parquet, "--index", lucene_index_dir, "--retriever", "bm25", "--model",
               instruct_like_model, "--out", out, "--max-new-tokens", str(RESPONSE_LENGTH), "--batch-size", "2",
               "--device", "cpu"])  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(instruct_like_model)
    assert [r["response"] for r in read_jsonl(os.path.join(out, "requests.jsonl"))] == \
        tokenizer.batch_decode(expected, skip_special_tokens=True)  # fmt: skip


def test_hf_engine_tokens_equal_the_training_rollout_and_stop_at_every_eos_id(tiny_model_dir, tmp_path):
    """Token for token, with batches that pad prompts differently from training; the model's second EOS id (here
    the newline this random model repeats) ends every response, as in the rollout."""
    from transformers import AutoTokenizer

    from generation_testlib import CHAT_PROMPTS, training_rollout_greedy, with_generation_config
    from recr1.generate import generate

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain = training_rollout_greedy(tiny_model_dir, CHAT_PROMPTS, RESPONSE_LENGTH, str(tmp_path))
    second_eos = plain[0][1]
    model = with_generation_config(tiny_model_dir, str(tmp_path / "model"), [tokenizer.eos_token_id, second_eos])
    expected = training_rollout_greedy(model, CHAT_PROMPTS, RESPONSE_LENGTH, str(tmp_path))
    assert expected != plain and all(ids[-1] == second_eos for ids in expected)
    got = generate(model, CHAT_PROMPTS, "hf", max_new_tokens=RESPONSE_LENGTH, batch_size=2, device="cpu")
    assert got.token_ids == expected
    assert got.texts == tokenizer.batch_decode(expected, skip_special_tokens=True)


def test_sampling_options_reach_the_rollout_sampler(test_parquet, instruct_like_model):
    """--do-sample at a high temperature with top_k 1 is greedy decoding again (the rollout's top-k filter)."""
    from recr1.generate import Sampling, generate

    prompts = [row["prompt"] for row in load_requests(test_parquet)]
    greedy = generate(instruct_like_model, prompts, max_new_tokens=6, device="cpu")
    top1 = generate(instruct_like_model, prompts, max_new_tokens=6, device="cpu",
                    sampling=Sampling(do_sample=True, temperature=5.0, top_k=1))  # fmt: skip
    hot = generate(instruct_like_model, prompts, max_new_tokens=6, device="cpu",
                   sampling=Sampling(do_sample=True, temperature=5.0))  # fmt: skip
    assert top1.token_ids == greedy.token_ids and hot.token_ids != greedy.token_ids


def test_bad_sampling_options_are_named():
    from recr1.generate import Sampling

    with pytest.raises(ValueError, match="top_p=0"):
        Sampling(top_p=0.0)
    with pytest.raises(ValueError, match="temperature=0"):
        Sampling(do_sample=True, temperature=0.0)
