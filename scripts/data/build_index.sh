#!/usr/bin/env bash
# Build the retrieval indexes of a corpus: Lucene BM25 (Pyserini) and/or FAISS dense.
#
#   bash scripts/data/build_index.sh                                   # Amazon-C4, both kinds
#   KIND=bm25 CORPUS=data/esci/corpus INDEX_ROOT=data/esci/index bash scripts/data/build_index.sh
#
# Environment: CORPUS (data/amazon_c4/corpus), INDEX_ROOT (data/amazon_c4/index: writes lucene/ and dense/),
#   KIND (both | bm25 | dense), THREADS (indexing threads, 4), JVM_HEAP (4g),
#   ENCODER (dense encoder: default the bundled all-MiniLM-L6-v2; hyp1231/blair-roberta-base for BLaIR),
#   INDEX_TYPE (hnsw | flat), BATCH_SIZE (64), DEVICE (cuda if available), OVERWRITE (1: replace existing), PYTHON.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"
CORPUS=${CORPUS:-data/amazon_c4/corpus}
INDEX_ROOT=${INDEX_ROOT:-data/amazon_c4/index}
KIND=${KIND:-both}
cd "$ROOT"
case "$KIND" in both|bm25|dense) ;; *) echo "KIND=$KIND: expected both, bm25 or dense" >&2; exit 2 ;; esac
overwrite=()
[ "${OVERWRITE:-0}" = "1" ] && overwrite=(--overwrite)

if [ "$KIND" != "dense" ]; then
  echo "[build_index] BM25 -> $INDEX_ROOT/lucene"
  "$PYTHON" -m recr1.retrieval.build_lucene --corpus "$CORPUS" --index "$INDEX_ROOT/lucene" \
      --threads "${THREADS:-4}" --jvm-heap "${JVM_HEAP:-4g}" "${overwrite[@]}"
fi
if [ "$KIND" != "bm25" ]; then
  echo "[build_index] dense -> $INDEX_ROOT/dense"
  dense=(--corpus "$CORPUS" --index "$INDEX_ROOT/dense" --index-type "${INDEX_TYPE:-hnsw}" --batch-size "${BATCH_SIZE:-64}")
  [ -n "${ENCODER:-}" ] && dense+=(--encoder "$ENCODER")
  [ -n "${DEVICE:-}" ] && dense+=(--device "$DEVICE")
  "$PYTHON" -m recr1.retrieval.build_dense "${dense[@]}" "${overwrite[@]}"
fi
