import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import verl.utils.torch_functional as verl_F


def test_masked_sum_and_mean_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert verl_F.masked_sum(values, mask).item() == 7.0
    assert verl_F.masked_mean(values, mask).item() == pytest.approx(7 / 3)
    assert verl_F.masked_sum(values, mask, axis=-1).tolist() == [3.0, 4.0]
    assert verl_F.masked_mean(values, mask, axis=-1).tolist() == pytest.approx([1.5, 4.0])
    assert verl_F.masked_mean(values, torch.zeros_like(mask)).item() == 0.0


def test_masked_var_by_hand_and_errors():
    values = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert verl_F.masked_var(values, mask).item() == pytest.approx(1.0)  # (1 + 0 + 1) / (3 - 1)
    assert verl_F.masked_var(values, mask, unbiased=False).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="empty"):
        verl_F.masked_var(values, torch.zeros(4))
    with pytest.raises(ValueError, match="single"):
        verl_F.masked_var(values, torch.tensor([0.0, 1.0, 0.0, 0.0]))


def test_masked_whiten_by_hand():
    out = verl_F.masked_whiten(torch.tensor([1.0, 2.0, 3.0, 50.0]), torch.tensor([1, 1, 1, 0]))
    assert out[:3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-6)
    kept = verl_F.masked_whiten(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3), shift_mean=False)
    assert kept.tolist() == pytest.approx([1.0, 2.0, 3.0], abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=30),
    mask_bits=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_masked_whiten_gives_zero_mean_unit_variance_on_the_mask(data, mask_bits):
    values = torch.tensor(data, dtype=torch.float64)
    mask = torch.tensor(mask_bits[: len(data)], dtype=torch.float64)
    mask[:2] = 1.0
    if verl_F.masked_var(values, mask) < 1e-3:  # (nearly) constant values cannot be scaled to unit variance
        return
    out = verl_F.masked_whiten(values, mask)
    assert verl_F.masked_mean(out, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert verl_F.masked_var(out, mask).item() == pytest.approx(1.0, rel=1e-4)


def test_clip_by_value():
    x = torch.tensor([-2.0, 0.5, 3.0])
    assert verl_F.clip_by_value(x, torch.tensor([-1.0, 1.0, 0.0]), 2.0).tolist() == [-1.0, 1.0, 2.0]


def test_logprobs_from_logits_by_hand():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 2.0]]))  # probs [1/6, 1/3, 1/2], [1/4, 1/4, 1/2]
    out = verl_F.logprobs_from_logits(logits, torch.tensor([2, 0]))
    assert out.tolist() == pytest.approx([math.log(0.5), math.log(0.25)], abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        verl_F.logprobs_from_logits(logits, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("chunk_elements", [verl_F.CHUNK_ELEMENTS, 7])  # 7 forces one row per chunk
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logprobs_and_entropy_match_log_softmax_values_and_gradients(monkeypatch, chunk_elements, dtype):
    monkeypatch.setattr(verl_F, "CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(0)
    base = (torch.randn(3, 5, 11) * 3).to(dtype)
    labels = torch.randint(0, 11, (3, 5))
    weights = torch.randn(3, 5)

    logits = base.clone().requires_grad_(True)
    logp = verl_F.logprobs_from_logits(logits, labels)
    ent = verl_F.entropy_from_logits(logits)
    assert logp.dtype == torch.float32 and ent.dtype == torch.float32
    ((logp + ent) * weights).sum().backward()

    ref_logits = base.float().clone().requires_grad_(True)
    ref_log_probs = F.log_softmax(ref_logits, dim=-1)
    ref_logp = ref_log_probs.gather(-1, labels[..., None]).squeeze(-1)
    ref_ent = -(ref_log_probs.exp() * ref_log_probs).sum(-1)
    ((ref_logp + ref_ent) * weights).sum().backward()

    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(logp, ref_logp, atol=tol, rtol=tol)
    torch.testing.assert_close(ent, ref_ent, atol=tol, rtol=tol)
    assert logits.grad.dtype == dtype
    torch.testing.assert_close(logits.grad.float(), ref_logits.grad, atol=tol, rtol=tol)


@pytest.mark.parametrize("chunk_elements", [verl_F.CHUNK_ELEMENTS, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_logprobs_and_entropy_equal_the_separate_kernels(monkeypatch, chunk_elements, dtype):
    """One pass gives the same log-probs (and log-prob gradients) and entropies; the entropy is detached."""
    monkeypatch.setattr(verl_F, "CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(2)
    base = (torch.randn(3, 5, 11) * 3).to(dtype)
    labels = torch.randint(0, 11, (3, 5))
    weights = torch.randn(3, 5)
    fused_logits, separate_logits = base.clone().requires_grad_(True), base.clone().requires_grad_(True)
    logp, ent = verl_F.logprobs_and_entropy_from_logits(fused_logits, labels)
    assert not ent.requires_grad and logp.requires_grad
    (logp * weights).sum().backward()
    ref_logp = verl_F.logprobs_from_logits(separate_logits, labels)
    (ref_logp * weights).sum().backward()
    torch.testing.assert_close(logp, ref_logp, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ent, verl_F.entropy_from_logits(base), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fused_logits.grad, separate_logits.grad, atol=0, rtol=0)
    with pytest.raises(ValueError, match="labels"):
        verl_F.logprobs_and_entropy_from_logits(base, labels[:, :2])


def test_logprobs_and_entropy_pass_gradcheck_in_float64():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (2, 3))
    assert torch.autograd.gradcheck(lambda z: verl_F.logprobs_from_logits(z, labels), (logits,))
    assert torch.autograd.gradcheck(verl_F.entropy_from_logits, (logits,))


def test_log_probs_keep_only_the_bf16_logits_for_backward():
    """Memory: nothing but the logits themselves (and the labels) is saved for the backward pass."""
    logits = torch.randn(4, 6, 50, dtype=torch.bfloat16, requires_grad=True)
    saved = []

    def pack(t):
        saved.append((str(t.dtype), t.numel()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        verl_F.logprobs_from_logits(logits, torch.zeros(4, 6, dtype=torch.long))
    assert sorted(saved) == sorted([("torch.bfloat16", 4 * 6 * 50), ("torch.int64", 4 * 6)])


def test_entropy_by_hand():
    uniform = torch.zeros(2, 8)
    assert verl_F.entropy_from_logits(uniform).tolist() == pytest.approx([math.log(8)] * 2, abs=1e-6)
    peaked = torch.tensor([[100.0, 0.0, 0.0]])
    assert verl_F.entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)
    two = torch.log(torch.tensor([[1.0, 3.0]]))  # p = [1/4, 3/4]
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert verl_F.entropy_from_logits(two).item() == pytest.approx(expected, abs=1e-6)


def test_log_probs_from_logits_response_shifts_by_one():
    input_ids = torch.tensor([[0, 1, 2, 3]])
    logits = torch.full((1, 4, 4), -1e4)
    logits[0, 1, 2] = 0.0  # position 1 predicts token 2 with probability 1
    logits[0, 2, 3] = 0.0
    logits[0, 3, 0] = 0.0  # the last position predicts nothing in the response
    out = verl_F.log_probs_from_logits_response(input_ids, logits, response_length=2)
    assert out.shape == (1, 2) and out[0].tolist() == pytest.approx([0.0, 0.0], abs=1e-4)


def test_get_response_mask_up_to_and_including_first_eos():
    responses = torch.tensor([[5, 2, 7, 2], [1, 1, 1, 1], [2, 0, 0, 0]])
    assert verl_F.get_response_mask(responses, eos_token=2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    mask = verl_F.get_response_mask(responses, eos_token=[7, 0], dtype=torch.float32)
    assert mask.dtype == torch.float32
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]]


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert verl_F.compute_position_id_with_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def test_padding_helpers_by_hand():
    assert verl_F.pad_2d_list_to_length([[1, 2], [3]], pad_token_id=0).tolist() == [[1, 2], [3, 0]]
    assert verl_F.pad_2d_list_to_length([[1, 2], [3]], 9, max_length=4).tolist() == [[1, 2, 9, 9], [3, 9, 9, 9]]
    x = torch.tensor([[1, 2]])
    assert verl_F.pad_sequence_to_length(x, 4, 0).tolist() == [[1, 2, 0, 0]]
    assert verl_F.pad_sequence_to_length(x, 4, 0, left_pad=True).tolist() == [[0, 0, 1, 2]]
    assert verl_F.pad_sequence_to_length(x, 1, 0) is x
    ids = torch.tensor([[0, 0, 7, 8], [5, 6, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])
    assert verl_F.remove_pad_token(ids, mask) == [[7, 8], [5, 6]]


def test_postprocess_data_pads_and_truncates():
    ids, mask = torch.tensor([[1, 2, 3, 4, 5]]), torch.ones(1, 5, dtype=torch.long)
    padded, padded_mask = verl_F.postprocess_data(ids[:, :2], mask[:, :2], 4, pad_token_id=0)
    assert padded.tolist() == [[0, 0, 1, 2]] and padded_mask.tolist() == [[0, 0, 1, 1]]
    assert verl_F.postprocess_data(ids, mask, 3, 0, truncation="left")[0].tolist() == [[3, 4, 5]]
    assert verl_F.postprocess_data(ids, mask, 3, 0, truncation="right")[0].tolist() == [[1, 2, 3]]
    assert verl_F.postprocess_data(ids, mask, 3, 0, truncation="middle")[0].tolist() == [[1, 4, 5]]
    with pytest.raises(ValueError, match="5.*3"):
        verl_F.postprocess_data(ids, mask, 3, 0)
    with pytest.raises(ValueError, match="'sideways'"):
        verl_F.postprocess_data(ids, mask, 3, 0, truncation="sideways")


def test_tokenize_and_postprocess_data_with_a_real_tokenizer():
    from verl.utils.tiny_model import DEFAULT_CORPUS, build_tokenizer

    tok = build_tokenizer(DEFAULT_CORPUS[:5])
    ids, mask = verl_F.tokenize_and_postprocess_data("running shoes", tok, 6, tok.pad_token_id)
    n = len(tok.encode("running shoes", add_special_tokens=False))
    assert ids.shape == (1, 6) and mask[0].tolist() == [0] * (6 - n) + [1] * n
    assert tok.decode(ids[0, 6 - n :]) == "running shoes"


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=5), left=st.booleans())
def test_unpad_then_pad_is_identity_on_real_tokens(lengths, left):
    batch, seqlen = len(lengths), 6
    mask = torch.zeros(batch, seqlen, dtype=torch.long)
    for i, n in enumerate(lengths):
        if n and left:
            mask[i, seqlen - n :] = 1
        elif n:
            mask[i, :n] = 1
    hidden = torch.randn(batch, seqlen, 3) * mask[..., None]
    packed, indices, cu_seqlens, max_seqlen = verl_F.unpad_input(hidden, mask)
    assert packed.shape == (sum(lengths), 3)
    assert cu_seqlens.tolist() == [sum(lengths[:i]) for i in range(batch + 1)] and max_seqlen == max(lengths)
    assert torch.equal(verl_F.pad_input(packed, indices, batch, seqlen), hidden)


def test_lr_schedules_by_hand():
    def factors(make, steps):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched = make(opt)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    const = factors(lambda o: verl_F.get_constant_schedule_with_warmup(o, 2), 4)
    assert const == pytest.approx([0.0, 0.5, 1.0, 1.0])
    # no warmup: the very first update already uses the full learning rate
    assert factors(lambda o: verl_F.get_constant_schedule_with_warmup(o, 0), 2) == pytest.approx([1.0, 1.0])
    cosine = factors(lambda o: verl_F.get_cosine_schedule_with_warmup(o, 2, 6, min_lr_ratio=0.2), 7)
    # after warmup: 0.6 + 0.4 * cos(pi * progress), progress = 0, 1/4, 1/2, 3/4, 1
    expected = [0.0, 0.5] + [0.6 + 0.4 * math.cos(math.pi * k / 4) for k in range(5)]
    assert cosine == pytest.approx(expected)
