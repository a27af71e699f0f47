#!/usr/bin/env bash
# Set up the environment if needed, then run the end-to-end CPU demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
echo "demo not built yet" >&2
exit 1
