#!/usr/bin/env bash
# Evaluate a checkpoint (or the raw-request baseline) on a prepared test split against BM25 and/or dense indexes:
# per-domain NDCG@10, NDCG@100, Recall@100 and format-ok rate, as a table and as JSON.
#
#   MODEL=checkpoints/Rec-R1/amazon_c4-bm25-qwen2.5-3b-grpo/global_step_200 bash scripts/eval/eval_checkpoint.sh
#   bash scripts/eval/eval_checkpoint.sh                      # no MODEL: the raw request is the query (baseline)
#   MODEL=Qwen/Qwen2.5-3B-Instruct ENGINE=vllm RETRIEVERS=bm25 bash scripts/eval/eval_checkpoint.sh
#
# MODEL may be an HF folder or hub id, or a trainer checkpoint folder (global_step_N: its actor/huggingface is used).
# A checkpoint saved without hf_model in checkpoint.save_contents (the default) has only the config and tokenizer
# there: its shards are merged once into OUT_DIR/hf_model (python -m verl.model_merger) and that folder is evaluated.
# To export any saved step yourself (any number of ranks, CPU only):
#   python -m verl.model_merger merge --backend fsdp --local_dir checkpoints/.../global_step_N --target_dir OUT
# Environment: DATA (DATA_DIR/test.parquet), DATA_DIR (data/amazon_c4/sparse), BM25_INDEX (data/amazon_c4/index/lucene),
#   DENSE_INDEX (data/amazon_c4/index/dense), RETRIEVERS (default: every kind whose index exists; remote when
#   RETRIEVAL_URL names a python -m recr1.retrieval.serve server), OUT_DIR
#   (outputs/eval/<model name>), ENGINE (hf | vllm), MAX_NEW_TOKENS (512), BATCH_SIZE (16), LIMIT (all rows), PYTHON.
# Writes OUT_DIR/<retriever>/{requests.jsonl,metrics.md,metrics.json}.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"
DATA_DIR=${DATA_DIR:-data/amazon_c4/sparse}
DATA=${DATA:-$DATA_DIR/test.parquet}
BM25_INDEX=${BM25_INDEX:-data/amazon_c4/index/lucene}
DENSE_INDEX=${DENSE_INDEX:-data/amazon_c4/index/dense}
MODEL=${MODEL:-}
cd "$ROOT"

if [ -n "$MODEL" ]; then
  for sub in actor/huggingface huggingface; do
    if [ -f "$MODEL/$sub/config.json" ]; then MODEL="$MODEL/$sub"; break; fi
  done
  name=$(echo "$MODEL" | sed -e 's#/actor/huggingface$##' -e 's#/huggingface$##' | tr '/' '_' | sed 's/^_*//')
else
  name=raw_request
fi
OUT_DIR=${OUT_DIR:-outputs/eval/$name}

has_weights() { compgen -G "$1/*.safetensors" > /dev/null || compgen -G "$1/*.bin" > /dev/null; }
if [ -n "$MODEL" ] && [ "$(basename "$MODEL")" = huggingface ] && [ -f "$MODEL/config.json" ] && ! has_weights "$MODEL"; then
  merged="$OUT_DIR/hf_model"
  if ! has_weights "$merged"; then
    echo "[eval] $MODEL holds no weights (saved without hf_model): merging the shards of $(dirname "$MODEL") into $merged"
    "$PYTHON" -m verl.model_merger merge --backend fsdp --local_dir "$(dirname "$MODEL")" --target_dir "$merged"
  fi
  MODEL=$merged
fi

if [ -z "${RETRIEVERS:-}" ] && [ -n "${RETRIEVAL_URL:-}" ]; then RETRIEVERS=remote; fi
if [ -z "${RETRIEVERS:-}" ]; then
  RETRIEVERS=""
  [ -d "$BM25_INDEX" ] && RETRIEVERS="bm25"
  [ -d "$DENSE_INDEX" ] && RETRIEVERS="$RETRIEVERS dense"
  if [ -z "$RETRIEVERS" ]; then
    echo "no index found at $BM25_INDEX or $DENSE_INDEX (build one with scripts/data/build_index.sh)" >&2
    exit 2
  fi
fi

status=0
for retriever in $RETRIEVERS; do
  index=$BM25_INDEX
  [ "$retriever" = "dense" ] && index=$DENSE_INDEX
  where=(--index "$index")
  if [ "$retriever" = "remote" ]; then
    index=${RETRIEVAL_URL:?RETRIEVERS=remote needs RETRIEVAL_URL}
    where=(--url "$index")
  fi
  args=(--data "$DATA" "${where[@]}" --retriever "$retriever" --out "$OUT_DIR/$retriever"
        --max-new-tokens "${MAX_NEW_TOKENS:-512}" --batch-size "${BATCH_SIZE:-16}")
  [ -n "$MODEL" ] && args+=(--model "$MODEL" --engine "${ENGINE:-hf}")
  [ -n "${LIMIT:-}" ] && args+=(--limit "$LIMIT")
  echo "[eval] $name on $DATA with $retriever ($index)"
  "$PYTHON" -m recr1.eval "${args[@]}" || status=$?
done
exit "$status"
