#!/usr/bin/env bash
# One prepared check for a GPU machine, well under 5 minutes: 3 GRPO steps of a tiny Qwen2 in bf16 with FSDP2 on nccl,
# through the real entry point (python -m verl.trainer.main_ppo, in-process backend: no Ray), once with the HF rollout
# and once with the vLLM rollout (in-process engine, sleep/wake, weight push) when vllm is importable.
#
# Usage:  bash scripts/gpu_check.sh                   run the checks (prints a PASS/FAIL line per check)
#         bash scripts/gpu_check.sh --fetch-wheels    on a machine WITH network: put the pure-Python packages that a
#                                                     bare GPU image lacks (tensordict, hydra, omegaconf, ...) into
#                                                     .whl/ so they can travel with the tree to a machine without it
# Env:    PYTHON (default python3), GPU_CHECK_DEVICE (default cuda; "cpu" rehearses the same script on a CPU box),
#         GPU_CHECK_DIR (work folder; default a fresh temp dir), GPU_CHECK_STEP_TIMEOUT (seconds per run, default 150),
#         GPU_CHECK_WHEELS (wheel folder, default <repo>/.whl: keep it out of git, e.g. in .git/info/exclude)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
WHEELS="${GPU_CHECK_WHEELS:-$ROOT/.whl}"

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$WHEELS"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$WHEELS" \
    "tensordict>=0.8" "pyvers>=0.2,<0.3" "hydra-core>=1.3" "omegaconf>=2.3,<2.4" 2>&1 | grep -v "is ignored" || true
  "$PY" -m pip wheel --quiet --no-deps -w "$WHEELS" "antlr4-python3-runtime==4.9.3" 2>&1 | grep -v "is ignored" || true
  ls -la "$WHEELS"
  exit 0
fi

echo "== gpu_check: device=$DEVICE python=$("$PY" -c 'import sys; print(sys.version.split()[0])')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# Packages a bare GPU image may lack, installed from carried wheels into a private folder (nothing is fetched here).
if ! "$PY" -c "import tensordict, hydra, omegaconf" >/dev/null 2>&1; then
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile --target /tmp/recr1-site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="/tmp/recr1-site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "missing tensordict/hydra/omegaconf and no wheels in $WHEELS (run --fetch-wheels on a networked machine)"
    exit 1
  fi
fi
export PYTHONPATH="$ROOT:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false

WORK="${GPU_CHECK_DIR:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
mkdir -p "$WORK"
"$PY" - "$DEVICE" <<'EOF' || exit 1
import sys, torch, transformers
device = sys.argv[1]
print(f"torch {torch.__version__}, transformers {transformers.__version__}, cuda available {torch.cuda.is_available()}")
if device == "cuda":
    assert torch.cuda.is_available(), "no CUDA device visible"
    assert torch.distributed.is_nccl_available(), "this torch has no nccl"
    print(f"gpu {torch.cuda.get_device_name()}, bf16 supported {torch.cuda.is_bf16_supported()}")
try:
    import vllm
    print(f"vllm {vllm.__version__}")
except ImportError:
    print("vllm not installed: the vLLM check is skipped")
EOF

# A tiny Qwen2 (4 layers, hidden 128, head_dim 32) and the trainer tests' toy task ("say red red red").
"$PY" -c "from verl.utils.tiny_model import save_tiny_model; save_tiny_model('$WORK/model', layers=4, hidden=128, heads=4, seed=0)" \
  || { echo "FAIL: building the tiny model"; exit 1; }

results=()
failed=0
run_grpo() {  # $1 = rollout name, rest = extra overrides
  local name="$1"; shift
  local dir="$WORK/grpo_$name"
  mkdir -p "$dir"
  mapfile -t overrides < <("$PY" - "$WORK/model" "$dir" <<'EOF'
import sys
sys.path.insert(0, "tests/verl/trainer")
from trainer_testlib import toy_overrides
print("\n".join(toy_overrides(sys.argv[1], sys.argv[2])))
EOF
)
  local t0=$SECONDS
  timeout "${GPU_CHECK_STEP_TIMEOUT:-150}" "$PY" -m verl.trainer.main_ppo "${overrides[@]}" \
    trainer.device="$DEVICE" trainer.total_training_steps=3 trainer.total_epochs=10 \
    trainer.val_before_train=True trainer.test_freq=3 actor_rollout_ref.rollout.name="$name" "$@" \
    > "$dir/log.txt" 2>&1
  local rc=$? secs=$((SECONDS - t0))
  if [ $rc -eq 0 ] && "$PY" - "$dir/ckpt/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in rows if "critic/score/mean" in r]
assert [r["step"] for r in train] == [1, 2, 3], [r.get("step") for r in rows]
last = train[-1]
keys = ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "response_length/mean", "timing_s/step",
        "timing_s/gen", "timing_s/sync_weights")
print("   last step: " + ", ".join(f"{k}={last[k]:.4g}" for k in keys if k in last))
mem = {k: v for k, v in last.items() if "memory" in k or "rss" in k}
if mem:
    print("   memory: " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(mem.items())))
EOF
  then
    results+=("PASS  grpo 3 steps, rollout=$name, ${secs}s")
  else
    results+=("FAIL  grpo 3 steps, rollout=$name, ${secs}s (exit $rc; log $dir/log.txt)")
    failed=$((failed + 1))
    tail -40 "$dir/log.txt"
  fi
}

if [ "$DEVICE" = "cuda" ]; then
  # FSDP2 computes in bf16 on cuda by default (fsdp_config.mixed_precision: null); the engine too.
  PRECISION=(actor_rollout_ref.rollout.dtype=bfloat16)
else
  PRECISION=(actor_rollout_ref.rollout.dtype=float32)
fi
run_grpo hf "${PRECISION[@]}"
if "$PY" -c "import vllm" >/dev/null 2>&1; then
  run_grpo vllm "${PRECISION[@]}" actor_rollout_ref.rollout.gpu_memory_utilization=0.3 \
    actor_rollout_ref.rollout.free_cache_engine=True actor_rollout_ref.rollout.max_num_seqs=64
else
  results+=("SKIP  grpo 3 steps, rollout=vllm (vllm not installed)")
fi

echo "== gpu_check results (${SECONDS}s since start, work dir $WORK)"
printf '%s\n' "${results[@]}"
passed=$(printf '%s\n' "${results[@]}" | grep -c '^PASS' || true)
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
