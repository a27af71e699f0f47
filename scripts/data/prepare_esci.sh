#!/usr/bin/env bash
# Prepare ESCI (Amazon Shopping Queries: US locale, Exact matches) for Rec-R1: parquet per template + the corpus.
#
#   bash scripts/data/prepare_esci.sh        # shopping_queries_dataset_{examples,products}.parquet in data/esci/raw
#
# The files come from https://github.com/amazon-science/esci-data (shopping_queries_dataset/).
# Environment: RAW_DIR (data/esci/raw), OUT_DIR (data/esci), TEMPLATES ("sparse dense"), VAL_SIZE (1000),
#   SEED (42), SMALL_VERSION (1: only the reduced Task-1 query set), MAX_REQUESTS (all), PYTHON.
# Writes: OUT_DIR/<template>/{train,val,test}.parquet + prep_report.json, OUT_DIR/corpus/part-*.jsonl.
# Next: CORPUS=data/esci/corpus INDEX_ROOT=data/esci/index bash scripts/data/build_index.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"
RAW_DIR=${RAW_DIR:-data/esci/raw}
OUT_DIR=${OUT_DIR:-data/esci}
TEMPLATES=${TEMPLATES:-sparse dense}
cd "$ROOT"

extra=(--val-size "${VAL_SIZE:-1000}" --seed "${SEED:-42}")
[ "${SMALL_VERSION:-0}" = "1" ] && extra+=(--small-version)
[ -n "${MAX_REQUESTS:-}" ] && extra+=(--max-requests "$MAX_REQUESTS")
for template in $TEMPLATES; do
  echo "[prepare_esci] template $template -> $OUT_DIR/$template"
  "$PYTHON" -m recr1.data.esci --raw-dir "$RAW_DIR" --out-dir "$OUT_DIR/$template" --template "$template" "${extra[@]}"
  # the corpus does not depend on the template: keep one copy
  rm -rf "$OUT_DIR/corpus"
  mv "$OUT_DIR/$template/corpus" "$OUT_DIR/corpus"
done
echo "[prepare_esci] corpus -> $OUT_DIR/corpus"
