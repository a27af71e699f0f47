#!/usr/bin/env bash
# One prepared check for a GPU machine (target: under 8 minutes on one H100/H200). Needs only torch + transformers
# on the machine: tensordict, hydra-core, omegaconf (and their small pure-Python needs) come as wheels carried in
# .whl/. No Ray, no vLLM: the in-process backend and the HF rollout. What it runs (scripts/gpu_check.py):
#   offload  3 GRPO steps, FSDP2 on nccl (world size 1), bf16 with actor param + optimizer offload, gradient
#            checkpointing, KL loss against a param-offloaded reference; checkpoint + HF export; resume to step 4
#   export   the HF export loads in transformers and matches the sharded checkpoint merged by verl.model_merger
#   size     2 GRPO steps of a model with Qwen2.5-0.5B's shapes: generation tokens/s, step time, peak memory
#
# Usage:  bash scripts/gpu_check.sh                   run the checks (PASS/FAIL line per check, figures in JSON)
#         bash scripts/gpu_check.sh --fetch-wheels    on a machine WITH network: put the wheels into .whl/
# Env:    PYTHON (default python3), GPU_CHECK_DEVICE (cuda; "cpu" rehearses the same script here),
#         GPU_CHECK_SHAPE (qwen2.5-0.5b; "tiny" for a quick rehearsal), GPU_CHECK_DIR (work folder, default a temp
#         dir), GPU_CHECK_SUMMARY (JSON output, default <work>/summary.json), GPU_CHECK_STEP_TIMEOUT (s per run, 240),
#         GPU_CHECK_WHEELS (wheel folder, default <repo>/.whl; git-ignored)
# The device tool:  run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=560), with
#                   GPU_CHECK_SUMMARY=$OUT/summary.json to bring the figures back.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
WHEELS="${GPU_CHECK_WHEELS:-$ROOT/.whl}"
PACKAGES=("tensordict>=0.8" "pyvers>=0.2,<0.3" "hydra-core>=1.3" "omegaconf>=2.3,<2.4")

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$WHEELS"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "${PACKAGES[@]}" 2>&1 | grep -v "is ignored" || true
  "$PY" -m pip wheel --quiet --no-deps -w "$WHEELS" "antlr4-python3-runtime==4.9.3" 2>&1 | grep -v "is ignored" || true
  ls -la "$WHEELS"
  exit 0
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! "$PY" -c "import tensordict, hydra, omegaconf" >/dev/null 2>&1; then
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/recr1-site \
      "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="/tmp/recr1-site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "FAIL  missing tensordict/hydra/omegaconf and no wheels in $WHEELS (run --fetch-wheels on a networked machine)"
    exit 1
  fi
fi
export PYTHONPATH="$ROOT:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

WORK="${GPU_CHECK_DIR:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
args=(--device "${GPU_CHECK_DEVICE:-cuda}" --work "$WORK" --shape "${GPU_CHECK_SHAPE:-qwen2.5-0.5b}"
      --step-timeout "${GPU_CHECK_STEP_TIMEOUT:-240}")
[ -n "${GPU_CHECK_SUMMARY:-}" ] && args+=(--summary "$GPU_CHECK_SUMMARY")
"$PY" scripts/gpu_check.py "${args[@]}"
status=$?
echo "== gpu_check finished in ${SECONDS}s (exit $status, work dir $WORK)"
exit "$status"
