"""Shared by the EOS / evaluation-parity tests (rollout, worker, trainer, recr1.eval, vLLM env): a tiny model whose
generation_config.json looks like Qwen2.5-Instruct's, and the training rollout's greedy answers to chat prompts."""
from __future__ import annotations

import json
import os
import shutil

import pandas as pd

# Qwen2.5-Instruct's sampling defaults, except the penalty: its 1.05 does not flip this random model's argmax (its
# favourite token, a newline that every chat prompt contains, leads the runner-up by ~2x), 3.0 does from step 0.
INSTRUCT_SAMPLING_DEFAULTS = {"do_sample": True, "temperature": 0.7, "top_k": 20, "top_p": 0.8,
                              "repetition_penalty": 3.0}

CHAT_PROMPTS = [
    [{"role": "user", "content": "I want red leather running shoes for my morning runs"}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "looking for a vintage brass compass for hiking"}],
    [{"role": "user", "content": "a good stainless steel kitchen knife please"}],
]


def with_generation_config(model_dir: str, out_dir: str, eos_token_id: list[int], **fields) -> str:
    """A copy of ``model_dir`` in ``out_dir`` whose generation_config.json has ``eos_token_id`` (a list, as
    Qwen2.5-Instruct's [<|im_end|>, <|endoftext|>]) and ``fields`` (default: INSTRUCT_SAMPLING_DEFAULTS)."""
    shutil.copytree(model_dir, out_dir)
    path = os.path.join(out_dir, "generation_config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(fields or INSTRUCT_SAMPLING_DEFAULTS, eos_token_id=list(eos_token_id))
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return out_dir


def training_rollout_greedy(model_dir: str, prompts: list, response_length: int, work_dir: str) -> list[list[int]]:
    """What training generates greedily (validation: rollout.val_kwargs) for chat ``prompts``: the prompts go through
    a parquet file and RLHFDataset, the responses through ActorRolloutRefWorker(role="rollout").generate_sequences
    on the in-process backend with meta_info {"validate": True}, as the trainer's validation sends it. Returns each
    response's tokens through its first EOS (where response_mask is 1). The default process group this creates
    (and the rank env vars) are removed again."""
    import torch.distributed as dist
    from omegaconf import OmegaConf

    from verl.protocol import DataProto
    from verl.single_controller.base.worker_group import ClassWithInitArgs, ResourcePool
    from verl.single_controller.local import LocalWorkerGroup
    from verl.utils.dataset import RLHFDataset, collate_fn
    from verl.workers.fsdp_workers import ActorRolloutRefWorker
    from verl.workers.sharding import load_tokenizer

    data = os.path.join(work_dir, "prompts.parquet")
    pd.DataFrame({"data_source": ["parity"] * len(prompts), "prompt": prompts}).to_parquet(data)
    dataset = RLHFDataset(data, load_tokenizer(model_dir), {"max_prompt_length": 1024})
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    gen = batch.select(batch_keys=["input_ids", "attention_mask", "position_ids"])
    gen.meta_info = {"validate": True}
    config = OmegaConf.create({
        "device": "cpu",
        "model": {"path": model_dir},
        "rollout": {"name": "hf", "n": 1, "temperature": 1.0, "top_k": -1, "top_p": 1.0, "do_sample": True,
                    "response_length": response_length,
                    "val_kwargs": {"do_sample": False, "temperature": 0, "top_k": -1, "top_p": 1.0, "n": 1}},
    })  # fmt: skip
    saved_env, had_group = dict(os.environ), dist.is_initialized()
    try:
        worker = ClassWithInitArgs(ActorRolloutRefWorker, config=config, role="rollout")
        wg = LocalWorkerGroup(ResourcePool([1]), worker)
        wg.init_model()
        out = wg.generate_sequences(gen)
    finally:
        if dist.is_initialized() and not had_group:
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved_env)
    mask = out.batch["response_mask"].bool()
    return [row[m].tolist() for row, m in zip(out.batch["responses"], mask)]
