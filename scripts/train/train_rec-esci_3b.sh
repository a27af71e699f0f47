#!/usr/bin/env bash
# Rec-R1's recipe on ESCI (Amazon Shopping Queries, US, Exact matches) with the BM25 reward.
# Same environment variables and DRY_RUN=1 mode as train_rec-amazon_c4_3b.sh; different data and index defaults.
#   DATA_DIR (data/esci/sparse), INDEX_DIR (data/esci/index/lucene)
set -euo pipefail
export DATA_DIR=${DATA_DIR:-data/esci/sparse}
export INDEX_DIR=${INDEX_DIR:-data/esci/index/lucene}
export EXPERIMENT_NAME=${EXPERIMENT_NAME:-esci-${RETRIEVER:-bm25}-qwen2.5-3b-grpo}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_rec-amazon_c4_3b.sh" "$@"
