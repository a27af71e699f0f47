"""The SFT loss projects onto the vocabulary only where a response token follows, and equals the full computation."""
import torch
from transformers import AutoModelForCausalLM

from verl.trainer.fsdp_sft_trainer import loss_positions, response_token_loss


def _right_padded_batch(vocab: int):
    """Three rows: prompts of 5, 7 and 4 tokens, responses of 3, 2 and 4 tokens, right padding to 14."""
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, vocab, (3, 14), generator=g)
    attention_mask = torch.zeros(3, 14, dtype=torch.long)
    loss_mask = torch.zeros(3, 14, dtype=torch.long)
    for row, (prompt, response) in enumerate([(5, 3), (7, 2), (4, 4)]):
        attention_mask[row, : prompt + response] = 1
        loss_mask[row, prompt: prompt + response] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids, loss_mask


def test_loss_positions_are_those_before_a_target():
    loss_mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0]])
    assert loss_positions(loss_mask).tolist() == [1, 2, 3]


def test_sliced_loss_equals_the_full_loss_and_skips_the_prompt(tiny_model_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    input_ids, attention_mask, position_ids, loss_mask = _right_padded_batch(model.config.vocab_size)
    projected_rows = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: projected_rows.append(args[0].shape[1]))
    try:
        full_logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        full = response_token_loss(full_logits, input_ids, loss_mask)
        positions = loss_positions(loss_mask)
        sliced_logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              logits_to_keep=positions).logits
        sliced = response_token_loss(sliced_logits, input_ids, loss_mask, positions)
    finally:
        hook.remove()
    torch.testing.assert_close(sliced, full, atol=1e-5, rtol=1e-6)
    # positions 3..7 (the earliest response starts at 4, the longest ends at 8), not all 14
    assert projected_rows == [14, 5] and positions.tolist() == [3, 4, 5, 6, 7]
    grads = []
    for loss in (full, sliced):
        model.zero_grad()
        loss.backward(retain_graph=True)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)
