#!/usr/bin/env bash
# Rec-R1's recipe on Amazon-C4 with a DENSE reward: the policy writes a pseudo-review (data prepared with
# --template dense), FAISS over all-MiniLM-L6-v2 (or BLaIR) embeddings ranks the catalog.
# Same environment variables and DRY_RUN=1 mode as train_rec-amazon_c4_3b.sh, with these defaults:
#   DATA_DIR (data/amazon_c4/dense), INDEX_DIR (data/amazon_c4/index/dense), CONFIG_NAME (recr1_grpo_dense)
set -euo pipefail
export RETRIEVER=dense
export CONFIG_NAME=${CONFIG_NAME:-recr1_grpo_dense}
export DATA_DIR=${DATA_DIR:-data/amazon_c4/dense}
export INDEX_DIR=${INDEX_DIR:-data/amazon_c4/index/dense}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_rec-amazon_c4_3b.sh" "$@"
