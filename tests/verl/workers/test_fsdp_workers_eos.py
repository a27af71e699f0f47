"""The rollout worker stops each response at every EOS id of the model: generation_config.json's list (Qwen2.5-Instruct:
[<|im_end|>, <|endoftext|>]) plus the tokenizer's, not the tokenizer's alone."""
import torch
from omegaconf import OmegaConf

from generation_testlib import with_generation_config
from verl.protocol import DataProto
from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool
from verl.single_controller.local import LocalWorkerGroup
from verl.workers.fsdp_workers import ActorRolloutRefWorker
from workers_testlib import left_padded_prompts

RESPONSE_LENGTH = 8
ROWS = 4


def rollout_worker(model_dir):
    config = OmegaConf.create({
        "device": "cpu",
        "model": {"path": model_dir},
        "rollout": {"name": "hf", "n": 1, "temperature": 1.0, "top_k": -1, "top_p": 1.0, "do_sample": True,
                    "response_length": RESPONSE_LENGTH},
    })  # fmt: skip
    wg = LocalWorkerGroup(ResourcePool([1]), ClassWithInitArgs(ActorRolloutRefWorker, config=config, role="rollout"))
    wg.init_model()
    return wg


def sample(wg, vocab):
    """Sampled responses for fixed prompts, the sampler's stream reseeded (a finished row still draws, so stopping
    early leaves every other draw as it was); no eos_token_id in meta_info: the worker's default applies."""
    ids, mask, pos = left_padded_prompts(ROWS, 6, vocab, seed=2)
    torch.manual_seed(0)
    return wg.generate_sequences(
        DataProto.from_dict(tensors={"input_ids": ids, "attention_mask": mask, "position_ids": pos})
    ).batch


def test_hf_rollout_stops_at_the_second_eos_id_of_generation_config(cpu_group, tiny_model_dir, tiny_vocab, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    free = sample(rollout_worker(tiny_model_dir), tiny_vocab)["responses"]
    assert not torch.isin(free, torch.tensor([tokenizer.eos_token_id])).any()
    second_eos = int(free[0, 3])  # row 0's 4th token becomes the model's second EOS id
    assert second_eos not in free[0, :3].tolist()
    model_dir = with_generation_config(tiny_model_dir, str(tmp_path / "model"), [tokenizer.eos_token_id, second_eos])
    out = sample(rollout_worker(model_dir), tiny_vocab)
    responses, mask = out["responses"], out["response_mask"]
    assert mask[0].tolist() == [1] * 4 + [0] * (RESPONSE_LENGTH - 4)
    for row in range(ROWS):
        hits = (free[row] == second_eos).nonzero()
        stop = int(hits[0]) if len(hits) else RESPONSE_LENGTH - 1
        assert responses[row, : stop + 1].tolist() == free[row, : stop + 1].tolist()
        assert torch.all(responses[row, stop + 1 :] == tokenizer.pad_token_id)
        assert mask[row].tolist() == [1] * (stop + 1) + [0] * (RESPONSE_LENGTH - stop - 1)
