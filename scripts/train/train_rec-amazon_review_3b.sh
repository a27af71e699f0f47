#!/usr/bin/env bash
# Rec-R1's sequential-recommendation recipe: GRPO on an Amazon Reviews 2023 category (All_Beauty in the paper) with the
# BM25 reward over the category's items. Same environment variables and DRY_RUN=1 mode as train_rec-amazon_c4_3b.sh;
# what differs is Rec-R1's amazon_review script: prompts up to 512 tokens (ten item titles) and a checkpoint every
# 100 steps. The reward's cut-offs follow the data source: amazon_review_* rows score NDCG@5000 in training and
# NDCG@50 in validation (recr1.reward.TASK_K, Rec-R1's values; set reward_kwargs.k_train / k_eval to change them).
#   CATEGORY (All_Beauty), DATA_DIR (data/amazon_review/$CATEGORY), INDEX_DIR (data/amazon_review/$CATEGORY/index/lucene)
# Data and index: CATEGORY=All_Beauty bash scripts/data/prepare_amazon_review.sh
set -euo pipefail
CATEGORY=${CATEGORY:-All_Beauty}
export DATA_DIR=${DATA_DIR:-data/amazon_review/$CATEGORY}
export INDEX_DIR=${INDEX_DIR:-data/amazon_review/$CATEGORY/index/lucene}
export EXPERIMENT_NAME=${EXPERIMENT_NAME:-amazon_review-${CATEGORY}-${RETRIEVER:-bm25}-qwen2.5-3b-grpo}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_rec-amazon_c4_3b.sh" \
    data.max_prompt_length=512 \
    trainer.save_freq=100 \
    "$@"
