#!/usr/bin/env bash
# Create .venv (if missing) and install the project into it. Idempotent: a second run only checks.
# Usage: source scripts/setup_env.sh   (or bash scripts/setup_env.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RECR1_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment at $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# The reference PyPI verl wheel for the core_algos parity test (see scripts/requirements-reference-verl.txt);
# checked before the stamp so that a missing wheel is fetched even when the environment is otherwise ready.
REFERENCE_WHEEL="$VENV/reference/verl-0.9.1-py3-none-any.whl"
if [ ! -f "$REFERENCE_WHEEL" ]; then
  echo "[setup] downloading the reference verl wheel into $VENV/reference"
  # only the parity test needs it (and fails naming the file without it): no index must not stop the setup
  "$VPY" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$ROOT/scripts/requirements-reference-verl.txt" -d "$VENV/reference" \
    || echo "[setup] WARNING: could not download it; tests/verl/trainer/ppo/test_core_algos_parity.py will fail"
fi

STAMP="$VENV/.recr1-installed"
HASH="$(cat "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  exit 0
fi

"$VPY" -m pip install --quiet --upgrade pip setuptools wheel
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  # An unpinned torch pulls a multi-GB CUDA build; on CPU machines the 2.13.0 CPU wheel is the one we want.
  echo "[setup] installing torch==${RECR1_TORCH_VERSION:-2.13.0}"
  "$VPY" -m pip install --quiet "torch==${RECR1_TORCH_VERSION:-2.13.0}"
fi
echo "[setup] installing rec-r1 (editable) with the dev and eval extras"
"$VPY" -m pip install --quiet -e "$ROOT[dev,eval]"
echo "$HASH" > "$STAMP"
echo "[setup] environment ready: $VENV"
