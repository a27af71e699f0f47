#!/usr/bin/env bash
# General abilities of a checkpoint next to its base model on lm-eval (IFEval, GSM8K, MMLU, HumanEval by default),
# as Rec-R1 checked that RL keeps them: one table, base and checkpoint side by side, plus JSON.
#
#   bash scripts/eval/general_abilities.sh checkpoints/Rec-R1/<experiment>/global_step_200 Qwen/Qwen2.5-3B-Instruct
#   TASKS=gsm8k,mmlu LIMIT=200 bash scripts/eval/general_abilities.sh MODEL BASE
#   ALLOW_CODE_EVAL=1 bash scripts/eval/general_abilities.sh MODEL BASE      # HumanEval runs the model's code here
#   TASKS=recr1_smoke bash scripts/eval/general_abilities.sh MODEL BASE      # the offline smoke task shipped here
#
# MODEL / BASE: an HF folder, a hub id, or a trainer checkpoint folder (global_step_N; shards are merged once into
# OUT_DIR/<column>_hf_model). Without BASE only the checkpoint column is printed.
# HumanEval executes model-written code on this machine; without ALLOW_CODE_EVAL=1 the run stops before loading any
# model and says so (drop it from TASKS instead, or set ALLOW_CODE_EVAL=1, which passes lm-eval's
# confirm_run_unsafe_code and sets HF_ALLOW_CODE_EVAL=1).
# Environment: TASKS (comma-separated lm-eval task/group names; default ifeval,gsm8k,mmlu,humaneval), LIMIT (documents
#   per task), BATCH_SIZE (auto), DEVICE (cuda if present), DTYPE (auto), NUM_FEWSHOT, CHAT_TEMPLATE=1 (apply the
#   model's chat template: instruct models), INCLUDE_PATH (another folder of custom task YAMLs), OUT_DIR
#   (outputs/general_abilities/<model name>), PYTHON. Tasks download their datasets from the HF hub on first use;
#   offline, set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 and have them cached. More flags: python -m
#   recr1.general_abilities --help (extra arguments after MODEL [BASE] are passed on).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"
if [ "$#" -lt 1 ]; then
  echo "usage: $0 MODEL [BASE] [extra python -m recr1.general_abilities arguments]" >&2
  exit 2
fi

args=("$@" --include-path "$ROOT/scripts/eval/lm_eval_tasks")
[ -n "${TASKS:-}" ] && args+=(--tasks "$TASKS")
[ -n "${LIMIT:-}" ] && args+=(--limit "$LIMIT")
[ -n "${BATCH_SIZE:-}" ] && args+=(--batch-size "$BATCH_SIZE")
[ -n "${DEVICE:-}" ] && args+=(--device "$DEVICE")
[ -n "${DTYPE:-}" ] && args+=(--dtype "$DTYPE")
[ -n "${NUM_FEWSHOT:-}" ] && args+=(--num-fewshot "$NUM_FEWSHOT")
[ "${CHAT_TEMPLATE:-0}" = "1" ] && args+=(--apply-chat-template)
[ "${ALLOW_CODE_EVAL:-0}" = "1" ] && args+=(--allow-code-execution)
[ -n "${INCLUDE_PATH:-}" ] && args+=(--include-path "$INCLUDE_PATH")
[ -n "${OUT_DIR:-}" ] && args+=(--out "$OUT_DIR")
exec "$PYTHON" -m recr1.general_abilities "${args[@]}"
