#!/usr/bin/env bash
# Prepare one Amazon Reviews 2023 category for Rec-R1's sequential recommendation: parquet, item corpus, BM25 index.
#
#   bash scripts/data/prepare_amazon_review.sh              # <Category>.jsonl(.gz) + meta_<Category>.jsonl(.gz) in RAW_DIR
#   SYNTHETIC=1 bash scripts/data/prepare_amazon_review.sh  # generate an offline synthetic category in the same format
#
# The raw files come from https://amazon-reviews-2023.github.io (e.g. raw/review_categories/All_Beauty.jsonl.gz and
# raw/meta_categories/meta_All_Beauty.jsonl.gz); no download happens here.
# Environment: CATEGORY (All_Beauty; Synthetic_Store with SYNTHETIC=1), RAW_DIR (data/amazon_review/raw),
#   OUT_DIR (data/amazon_review/$CATEGORY), MIN_HISTORY (1), MAX_HISTORY (10), INDUCTIVE_FRACTION (0.1),
#   MAX_EVAL_ROWS (1000), SEED (42), SYNTHETIC_USERS (2000), SYNTHETIC_ITEMS (3000), INDEX (1: build the BM25 index),
#   JVM_HEAP (4g), PYTHON.
# Writes: OUT_DIR/{train,val,test}.parquet + prep_report.json, OUT_DIR/corpus/part-*.jsonl, OUT_DIR/index/lucene.
# Next: CATEGORY=... bash scripts/train/train_rec-amazon_review_3b.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"
if [ "${SYNTHETIC:-0}" = "1" ]; then CATEGORY=${CATEGORY:-Synthetic_Store}; else CATEGORY=${CATEGORY:-All_Beauty}; fi
RAW_DIR=${RAW_DIR:-data/amazon_review/raw}
OUT_DIR=${OUT_DIR:-data/amazon_review/$CATEGORY}
SEED=${SEED:-42}
cd "$ROOT"

if [ "${SYNTHETIC:-0}" = "1" ]; then
  "$PYTHON" -m recr1.data.synthetic_reviews --out "$RAW_DIR" --category "$CATEGORY" \
      --users "${SYNTHETIC_USERS:-2000}" --items "${SYNTHETIC_ITEMS:-3000}" --seed "$SEED"
fi
echo "[prepare_amazon_review] $CATEGORY -> $OUT_DIR"
"$PYTHON" -m recr1.data.amazon_review --raw-dir "$RAW_DIR" --category "$CATEGORY" --out-dir "$OUT_DIR" \
    --min-history "${MIN_HISTORY:-1}" --max-history "${MAX_HISTORY:-10}" \
    --inductive-fraction "${INDUCTIVE_FRACTION:-0.1}" --max-eval-rows "${MAX_EVAL_ROWS:-1000}" --seed "$SEED"
if [ "${INDEX:-1}" = "1" ]; then
  KIND=bm25 CORPUS="$OUT_DIR/corpus" INDEX_ROOT="$OUT_DIR/index" JVM_HEAP="${JVM_HEAP:-4g}" OVERWRITE=1 \
      bash "$ROOT/scripts/data/build_index.sh"
fi
