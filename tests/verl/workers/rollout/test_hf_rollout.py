"""HF rollout on the tiny Qwen2 (FSDP2-sharded, and the plain module one rank uses): left padding, EOS stop, masks,
position ids, greedy determinism; the inverse-CDF sampler's distribution and filters."""
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from verl.protocol import DataProto
from verl.utils.fsdp_utils import build_device_mesh, is_sharded
from verl.workers.rollout.hf_rollout import HFRollout, filter_logits, sample_from_probs, sample_next_token
from verl.workers.sharding import build_fsdp_causal_lm
from workers_testlib import left_padded_prompts

RESPONSE_LENGTH = 6
UNUSED_EOS = 1  # a special token the random tiny model does not produce greedily


def _rollout(model_dir, force_fsdp2=True, **overrides):
    cfg = OmegaConf.create(
        {
            "temperature": 1.0,
            "top_k": -1,
            "top_p": 1.0,
            "do_sample": True,
            "response_length": RESPONSE_LENGTH,
            "val_kwargs": {"do_sample": False, "temperature": 0, "top_k": -1, "top_p": 1.0},
            **overrides,
        }
    )
    module = build_fsdp_causal_lm(
        OmegaConf.create({"path": model_dir}), None, build_device_mesh("cpu"), "cpu", force_fsdp2=force_fsdp2
    )
    return HFRollout(module, cfg)


def _prompts(vocab, eos, batch_size=5, prompt_len=7, **meta):
    ids, mask, pos = left_padded_prompts(batch_size, prompt_len, vocab, seed=11)
    return DataProto.from_dict(
        tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos},
        non_tensors={"uid": [f"u{i}" for i in range(batch_size)]},
        meta_info={"eos_token_id": eos, "pad_token_id": 0, **meta},
    )


@pytest.fixture(scope="module")
def greedy_run(cpu_group, tiny_model_dir, tiny_vocab):
    """A greedy (validate=True) rollout on the FSDP2-wrapped model whose EOS never appears, and the rollout."""
    rollout = _rollout(tiny_model_dir)
    out = rollout.generate_sequences(_prompts(tiny_vocab, UNUSED_EOS, validate=True))
    assert not (out.batch["responses"] == UNUSED_EOS).any()
    return rollout, out


def test_left_padded_greedy_matches_unpadded_hf_generate(greedy_run, tiny_model_dir, tiny_vocab):
    _, out = greedy_run
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = _prompts(tiny_vocab, UNUSED_EOS)
    for row in range(len(prompts)):
        ids = prompts.batch["input_ids"][row][prompts.batch["attention_mask"][row].bool()].unsqueeze(0)
        expected = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=RESPONSE_LENGTH, do_sample=False,
            eos_token_id=UNUSED_EOS, pad_token_id=0,
        )[0, ids.shape[1]:]
        assert out.batch["responses"][row].tolist() == expected.tolist(), row


def test_output_layout_masks_and_position_ids(greedy_run, tiny_vocab):
    _, out = greedy_run
    prompts = _prompts(tiny_vocab, UNUSED_EOS)
    b = out.batch
    p = prompts.batch["input_ids"].shape[1]
    assert b["responses"].shape == (5, RESPONSE_LENGTH) and b["input_ids"].shape == (5, p + RESPONSE_LENGTH)
    assert torch.equal(b["prompts"], prompts.batch["input_ids"])
    assert torch.equal(b["input_ids"], torch.cat([b["prompts"], b["responses"]], -1))
    assert torch.all(b["response_mask"] == 1)  # no EOS: every response token is valid
    assert torch.equal(b["attention_mask"], torch.cat([prompts.batch["attention_mask"], b["response_mask"]], -1))
    # positions count the real tokens: consecutive over the valid part of each row
    valid_pos = [b["position_ids"][r][b["attention_mask"][r].bool()] for r in range(5)]
    assert all(torch.equal(vp, torch.arange(len(vp))) for vp in valid_pos)
    assert list(out.non_tensor_batch["uid"]) == [f"u{i}" for i in range(5)]


def test_stops_at_eos_pads_after_it_and_masks_through_it(greedy_run, tiny_vocab):
    rollout, free = greedy_run
    eos = int(free.batch["responses"][0, 2])  # the token row 0 emits at step 2 becomes EOS
    out = rollout.generate_sequences(_prompts(tiny_vocab, eos, validate=True))
    responses, mask = out.batch["responses"], out.batch["response_mask"]
    for row in range(5):
        hits = (free.batch["responses"][row] == eos).nonzero()
        stop = int(hits[0]) if len(hits) else RESPONSE_LENGTH - 1
        assert responses[row, : stop + 1].tolist() == free.batch["responses"][row, : stop + 1].tolist()
        assert torch.all(responses[row, stop + 1 :] == 0)
        assert mask[row].tolist() == [1] * (stop + 1) + [0] * (RESPONSE_LENGTH - stop - 1)
    assert mask[0, -1] == 0  # row 0 stopped early


def test_greedy_is_deterministic_and_parameters_are_resharded(greedy_run, tiny_vocab):
    rollout, first = greedy_run
    rollout.module.train()
    second = rollout.generate_sequences(_prompts(tiny_vocab, UNUSED_EOS, do_sample=False))
    assert torch.equal(first.batch["responses"], second.batch["responses"])
    assert is_sharded(rollout.module)  # the gathered full parameters were released
    assert rollout.module.training  # train mode restored


def test_sampling_respects_top_k(greedy_run, tiny_vocab):
    """top_k=1 sampling at a high temperature is greedy decoding."""
    rollout, greedy = greedy_run
    rollout.config.top_k = 1
    rollout.config.temperature = 5.0
    try:
        sampled = rollout.generate_sequences(_prompts(tiny_vocab, UNUSED_EOS))
    finally:
        rollout.config.top_k, rollout.config.temperature = -1, 1.0
    assert torch.equal(sampled.batch["responses"], greedy.batch["responses"])


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # nucleus 0.7: 0.5 alone is not enough, 0.5 + 0.3 covers it
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert not torch.isinf(filter_logits(logits, top_k=-1, top_p=1.0)).any()


def test_plain_single_rank_module_generates_what_fsdp2_generates(greedy_run, tiny_model_dir, tiny_vocab):
    """One rank gets the plain module (no FSDP2 hooks): the same greedy tokens as the FSDP2-wrapped one."""
    _, fsdp2_out = greedy_run
    plain = _rollout(tiny_model_dir, force_fsdp2=False)
    assert not is_sharded(plain.module)
    out = plain.generate_sequences(_prompts(tiny_vocab, UNUSED_EOS, validate=True))
    assert torch.equal(out.batch["responses"], fsdp2_out.batch["responses"])


def _frequencies(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(tokens.flatten(), minlength=vocab).float() / tokens.numel()


def test_inverse_cdf_draws_follow_the_probabilities_and_skip_zero_mass():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.15, 0.05, 0.0], [0.0, 0.1, 0.0, 0.2, 0.0, 0.7]])
    rows = probs.repeat(20000, 1)  # 20000 draws per distribution, both in one batch
    draws = sample_from_probs(rows, generator=torch.Generator().manual_seed(0)).view(20000, 2)
    for row in range(2):
        freq = _frequencies(draws[:, row], 6)
        assert torch.all(freq[probs[row] == 0] == 0), freq  # zero-probability tokens never drawn
        # 4 standard deviations of a frequency estimated from 20000 draws
        tolerance = 4 * torch.sqrt(probs[row] * (1 - probs[row]) / 20000) + 1e-4
        assert torch.all((freq - probs[row]).abs() <= tolerance), (row, freq)
    again = sample_from_probs(rows, generator=torch.Generator().manual_seed(0)).view(20000, 2)
    assert torch.equal(draws, again)  # a fixed generator fixes the draws


def test_inverse_cdf_handles_unnormalised_rows_and_a_single_survivor():
    rows = torch.tensor([[2.0, 0.0, 6.0], [0.0, 0.0, 1e-30]]).repeat(4000, 1)
    draws = sample_from_probs(rows, generator=torch.Generator().manual_seed(1)).view(4000, 2)
    assert abs(_frequencies(draws[:, 0], 3)[2].item() - 0.75) < 0.03
    assert torch.all(draws[:, 1] == 2)  # the only token with mass, however little


def test_sampling_never_leaves_the_top_k_or_top_p_set():
    logits = torch.log(torch.tensor([[0.4, 0.25, 0.2, 0.1, 0.05]])).repeat(20000, 1)
    gen = torch.Generator().manual_seed(2)
    top_k = sample_next_token(logits, True, temperature=1.0, top_k=2, generator=gen)
    assert set(top_k.tolist()) == {0, 1}
    assert abs(_frequencies(top_k, 5)[0].item() - 0.4 / 0.65) < 0.015  # renormalised within the top-k
    top_p = sample_next_token(logits, True, temperature=1.0, top_p=0.7, generator=gen)  # 0.4 + 0.25 + 0.2 >= 0.7
    assert set(top_p.tolist()) == {0, 1, 2}
    hot = sample_next_token(logits, True, temperature=3.0, top_k=3, top_p=0.9, generator=gen)
    assert set(hot.tolist()) <= {0, 1, 2}
