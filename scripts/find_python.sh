# Sourced by the scripts under scripts/ (needs ROOT, the repository root): PYTHON, unless set, becomes the
# project environment's python ($RECR1_VENV or .venv) when it exists, else python3.
if [ -z "${PYTHON:-}" ]; then
  if [ -x "${RECR1_VENV:-$ROOT/.venv}/bin/python" ]; then PYTHON="${RECR1_VENV:-$ROOT/.venv}/bin/python"
  else PYTHON=python3
  fi
fi
