"""vLLM rollout on 2 ranks: the actor is FSDP2-sharded over both, so every weight push all-gathers real shards.

tensor_model_parallel_size=2: one engine split over both ranks (prompts gathered within the group);
tensor_model_parallel_size=1: one engine per rank (data parallel). Each rank checks vLLM == HF rollout on its own
rows, before and after the actor's weights change. Runs only where vLLM is importable (scripts/test_vllm.sh).
"""
import json
import os
import socket

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/test_vllm.sh runs these tests in .venv-vllm")

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, tp: int, model_dir: str, out_dir: str) -> None:
    """One rank: build the sharded actor, the vLLM and HF rollouts; compare greedy outputs on this rank's rows."""
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD), "MASTER_ADDR": "127.0.0.1",
         "MASTER_PORT": str(port), "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    )
    result = {"rank": rank}
    try:
        from omegaconf import OmegaConf
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from test_vllm_rollout import QUESTIONS, greedy, make_prompts, redraw_weights, rollout_config
        from verl.utils.fsdp_utils import build_device_mesh
        from verl.workers.rollout.hf_rollout import HFRollout
        from verl.workers.rollout.vllm_rollout import build_vllm_rollout
        from verl.workers.sharding import build_fsdp_causal_lm

        mesh = build_device_mesh("cpu")
        model_cfg = OmegaConf.create({"path": model_dir, "override_config": {}, "enable_gradient_checkpointing": False})
        actor = build_fsdp_causal_lm(model_cfg, None, mesh, "cpu", trainable=True)
        result["actor_sharded"] = all(p.to_local().numel() < p.numel() for p in actor.parameters() if p.ndim == 2)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        config = rollout_config(tensor_model_parallel_size=tp)
        vllm_rollout = build_vllm_rollout(actor, model_dir, config, tokenizer=tokenizer, device="cpu")
        hf_rollout = HFRollout(actor, config)

        half = len(QUESTIONS) // WORLD
        prompts = make_prompts(tokenizer, QUESTIONS[rank * half : (rank + 1) * half])
        before = vllm_rollout.generate_sequences(greedy(prompts)).batch["responses"]
        result["before_equal"] = torch.equal(before, hf_rollout.generate_sequences(greedy(prompts)).batch["responses"])

        other = redraw_weights(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), seed=1)
        set_model_state_dict(actor, other, options=StateDictOptions(full_state_dict=True, strict=False))
        after = vllm_rollout.generate_sequences(greedy(prompts)).batch["responses"]
        result["after_equal"] = torch.equal(after, hf_rollout.generate_sequences(greedy(prompts)).batch["responses"])
        result["changed"] = float((after != before).float().mean())
    except Exception as e:  # reported to the parent, which fails the test with it
        import traceback

        result["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


@pytest.fixture(scope="module")
def contextual_model_dir(tiny_model_dir, tmp_path_factory):
    import shutil

    from transformers import AutoModelForCausalLM

    from test_vllm_rollout import redraw_weights

    out = str(tmp_path_factory.mktemp("contextual_tiny_model_mr"))
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.load_state_dict(redraw_weights(model, seed=0))
    model.save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("tp", [2, 1], ids=["tp2", "dp2"])
def test_two_ranks_match_hf_before_and_after_weight_change(tp, contextual_model_dir, tmp_path):
    port = _free_port()
    mp.start_processes(
        _rank_main, args=(port, tp, contextual_model_dir, str(tmp_path)), nprocs=WORLD, join=True, start_method="spawn"
    )
    for rank in range(WORLD):
        path = tmp_path / f"rank{rank}.json"
        assert path.exists(), f"rank {rank} wrote no result"
        result = json.loads(path.read_text())
        assert "error" not in result, f"rank {rank} failed:\n{result['error']}"
        assert result["actor_sharded"], f"rank {rank}: the actor's matrices are not sharded over 2 ranks"
        assert result["before_equal"], f"rank {rank}: vLLM != HF with the initial weights"
        assert result["after_equal"], f"rank {rank}: vLLM != HF after the weight change"
        assert result["changed"] > 0.5, f"rank {rank}: only {result['changed']:.0%} of the tokens changed"
