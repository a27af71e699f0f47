#!/usr/bin/env bash
# Create the benchmark-only TRL environment (.venv-trl) next to .venv. Idempotent: a second run only checks.
# TRL is not a project dependency; it lives here so scripts/bench/train_throughput.py can run GRPOTrainer
# on the same model, prompts and reward as our trainer.
# Usage: bash scripts/bench/setup_trl_env.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${RECR1_TRL_VENV:-$ROOT/.venv-trl}"
PY="${PYTHON:-python3}"
TORCH_VERSION="${RECR1_TORCH_VERSION:-2.13.0}"
TRL_VERSION="${RECR1_TRL_VERSION:-1.16.0}"
# Same transformers as the project venv, so both sides run the very same Qwen2 modelling code.
MAIN_PY="$ROOT/.venv/bin/python"
if [ -z "${RECR1_TRANSFORMERS_VERSION:-}" ] && [ -x "$MAIN_PY" ]; then
  RECR1_TRANSFORMERS_VERSION="$("$MAIN_PY" -c 'import importlib.metadata as m; print(m.version("transformers"))' 2>/dev/null || true)"
fi
TRANSFORMERS_SPEC="transformers${RECR1_TRANSFORMERS_VERSION:+==$RECR1_TRANSFORMERS_VERSION}"

STAMP="$VENV/.trl-installed"
HASH="$(cat "$ROOT/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)-$TORCH_VERSION-$TRL_VERSION-$TRANSFORMERS_SPEC"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup-trl] creating virtual environment at $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
pip_install() {  # quiet, minus the harmless warnings about empty local index folders
  "$VPY" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install --upgrade pip setuptools wheel

# torch first and pinned: an unpinned one pulls a multi-GB CUDA build (the CPU wheel is found via find-links).
if ! "$VPY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" >/dev/null 2>&1; then
  echo "[setup-trl] installing torch==$TORCH_VERSION"
  pip_install "torch==$TORCH_VERSION"
fi

# A constraints file keeps trl's resolver from touching torch.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
echo "[setup-trl] installing trl==$TRL_VERSION, $TRANSFORMERS_SPEC, accelerate, datasets, py-spy"
pip_install -c "$CONSTRAINTS" \
  "trl==$TRL_VERSION" "$TRANSFORMERS_SPEC" accelerate datasets py-spy psutil numpy
# The project itself (no deps: ray/pyserini/faiss are not needed here), for verl.utils.tiny_model and the bench task.
echo "[setup-trl] installing rec-r1 (editable, no deps)"
pip_install --no-deps -e "$ROOT"
"$VPY" -c "import torch, trl, transformers, verl.utils.tiny_model; print('[setup-trl] torch', torch.__version__, '| trl', trl.__version__, '| transformers', transformers.__version__)"
echo "$HASH" > "$STAMP"
echo "[setup-trl] environment ready: $VENV"
