#!/usr/bin/env bash
# Set up the environment if needed, then run the end-to-end CPU demo:
# synthetic catalog -> Lucene index -> tiny policy -> SFT warm start -> GRPO with the BM25 reward -> evaluation.
#
# Usage: bash scripts/demo.sh [--task search|seqrec] [--fast] [--seed N] [--out DIR] [--set NAME=VALUE ...] [--verbose]
#        (--task seqrec: Rec-R1's sequential recommendation on a synthetic Amazon Reviews 2023 category instead;
#         outputs in outputs/demo-seqrec/)
#        (all arguments go to `python -m recr1.demo`; see --help). Outputs: outputs/demo/results.{json,md}, curves.png
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec "${RECR1_VENV:-$ROOT/.venv}/bin/python" -m recr1.demo "$@"
