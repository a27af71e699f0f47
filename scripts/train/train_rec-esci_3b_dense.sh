#!/usr/bin/env bash
# Rec-R1's recipe on ESCI with a DENSE reward (data prepared with --template dense, FAISS index).
# Same environment variables and DRY_RUN=1 mode as train_rec-amazon_c4_3b.sh, with these defaults:
#   DATA_DIR (data/esci/dense), INDEX_DIR (data/esci/index/dense), CONFIG_NAME (recr1_grpo_dense)
set -euo pipefail
export RETRIEVER=dense
export CONFIG_NAME=${CONFIG_NAME:-recr1_grpo_dense}
export DATA_DIR=${DATA_DIR:-data/esci/dense}
export INDEX_DIR=${INDEX_DIR:-data/esci/index/dense}
export EXPERIMENT_NAME=${EXPERIMENT_NAME:-esci-dense-qwen2.5-3b-grpo}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_rec-amazon_c4_3b.sh" "$@"
