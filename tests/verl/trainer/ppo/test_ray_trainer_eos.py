"""The trainer's generation (driver -> rollout worker) stops at every EOS id of the model, not only the tokenizer's:
the driver must not narrow the worker's list (generation_config.json's + the tokenizer's) down to one id."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trainer_testlib import toy_overrides  # noqa: E402

from generation_testlib import training_rollout_greedy, with_generation_config  # noqa: E402
from verl.protocol import DataProto  # noqa: E402
from verl.trainer.main_ppo import create_trainer, load_config  # noqa: E402


def test_training_step_generation_stops_at_the_second_eos_id(tiny_model_dir, tmp_path, one_thread, clean_process):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # this random model greedily repeats one token after a chat prompt; that token becomes the second EOS id
    (first, *_), = training_rollout_greedy(tiny_model_dir, [[{"role": "user", "content": "say red red red"}]], 4,
                                           str(tmp_path))  # fmt: skip
    model_dir = with_generation_config(tiny_model_dir, str(tmp_path / "model"), [tokenizer.eos_token_id, first])
    trainer = create_trainer(load_config(toy_overrides(model_dir, str(tmp_path / "run"), **{
        "actor_rollout_ref.rollout.do_sample": False})))  # fmt: skip
    trainer.init_workers()
    try:
        batch = trainer._generate(DataProto.from_single_dict(next(iter(trainer.train_dataloader))), {}, {})
    finally:
        trainer.shutdown()
    responses, mask = batch.batch["responses"], batch.batch["response_mask"]
    length = responses.shape[1]
    assert (mask.sum(-1) < length).any(), "no response met the second EOS id"
    for row in range(len(responses)):
        hits = (responses[row] == first).nonzero()
        stop = int(hits[0]) if len(hits) else length - 1
        assert mask[row].tolist() == [1] * (stop + 1) + [0] * (length - stop - 1), row
        assert torch.all(responses[row, stop + 1 :] == tokenizer.pad_token_id), row
