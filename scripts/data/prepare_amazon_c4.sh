#!/usr/bin/env bash
# Prepare Amazon-C4 for Rec-R1: parquet for the sparse (BM25) and dense prompt templates, and the item corpus.
#
#   bash scripts/data/prepare_amazon_c4.sh                 # raw files already in data/amazon_c4/raw
#   FROM_HUB=1 bash scripts/data/prepare_amazon_c4.sh      # download test.csv + item pool from McAuley-Lab/Amazon-C4
#   SYNTHETIC=1 bash scripts/data/prepare_amazon_c4.sh     # generate an offline synthetic catalog in the same format
#
# Environment: RAW_DIR (data/amazon_c4/raw: test.csv, sampled_item_metadata_1M.jsonl), OUT_DIR (data/amazon_c4),
#   TEMPLATES ("sparse dense"), VAL_SIZE (1000), SEED (42), TEST_DOMAINS (Rec-R1's four), MAX_REQUESTS (all),
#   SYNTHETIC_ITEMS (20000), SYNTHETIC_REQUESTS (5000), PYTHON (default: .venv/bin/python).
# Writes: OUT_DIR/<template>/{train,val,test}.parquet + prep_report.json, OUT_DIR/corpus/part-*.jsonl.
# Next: bash scripts/data/build_index.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"
RAW_DIR=${RAW_DIR:-data/amazon_c4/raw}
OUT_DIR=${OUT_DIR:-data/amazon_c4}
TEMPLATES=${TEMPLATES:-sparse dense}
VAL_SIZE=${VAL_SIZE:-1000}
SEED=${SEED:-42}
TEST_DOMAINS=${TEST_DOMAINS:-Video_Games,Baby_Products,Office_Products,Sports_and_Outdoors}
cd "$ROOT"

if [ "${SYNTHETIC:-0}" = "1" ]; then
  "$PYTHON" -m recr1.data.synthetic --out "$RAW_DIR" --items "${SYNTHETIC_ITEMS:-20000}" \
      --requests "${SYNTHETIC_REQUESTS:-5000}" --seed "$SEED"
fi
source_args=(--raw-dir "$RAW_DIR")
[ "${FROM_HUB:-0}" = "1" ] && source_args+=(--from-hub)
extra=()
[ -n "${MAX_REQUESTS:-}" ] && extra+=(--max-requests "$MAX_REQUESTS")
for template in $TEMPLATES; do
  echo "[prepare_amazon_c4] template $template -> $OUT_DIR/$template"
  "$PYTHON" -m recr1.data.amazon_c4 "${source_args[@]}" --out-dir "$OUT_DIR/$template" --template "$template" \
      --val-size "$VAL_SIZE" --seed "$SEED" --test-domains "$TEST_DOMAINS" "${extra[@]}"
  source_args=(--raw-dir "$RAW_DIR")  # downloaded once (with --from-hub the files land in RAW_DIR)
done
echo "[prepare_amazon_c4] corpus -> $OUT_DIR/corpus"
"$PYTHON" -m recr1.data.corpus --items "$RAW_DIR/sampled_item_metadata_1M.jsonl" --out "$OUT_DIR/corpus"
