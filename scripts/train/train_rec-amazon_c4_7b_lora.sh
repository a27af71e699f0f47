#!/usr/bin/env bash
# Rec-R1's Amazon-C4 recipe (train_rec-amazon_c4_3b.sh) with a LoRA actor on Qwen2.5-7B-Instruct, for 2 GPUs.
#
#   export N_GPUS=2 DATA_DIR=data/amazon_c4/sparse ROLLOUT_TP_SIZE=2 WANDB_API_KEY=... HF_HOME=...
#   bash scripts/train/train_rec-amazon_c4_7b_lora.sh [hydra overrides]
#   DRY_RUN=1 bash scripts/train/train_rec-amazon_c4_7b_lora.sh        # resolved config + path checks, no GPU
#
# LoRA (README "LoRA"): rank 64, alpha 32 on every linear layer (verl's example settings). Only the adapters train, the
# frozen base stays in bf16 and doubles as the reference policy (adapters off), so no reference copy is built, and
# Adam's state covers only the adapters. The actor lr is verl's LoRA example value (adapters want a larger step than
# a full fine-tune: 3e-6 vs Rec-R1's 1e-6); Rec-R1's offload settings stay (optimizer offload, the 0.3 vLLM share).
# vLLM receives the merged weights at each sync (verl/workers/rollout/vllm_weight_sync.py says why).
# Checkpoints hold the adapters (+ actor/lora_adapter/, a peft folder); the merger writes the merged HF model:
#   python -m verl.model_merger merge --backend fsdp --local_dir .../global_step_200/actor --target_dir hf/step200 \
#       [--save_lora_adapter]
# Environment: as train_rec-amazon_c4_3b.sh; BASE_MODEL defaults to Qwen/Qwen2.5-7B-Instruct, LORA_RANK (64),
# LORA_ALPHA (32), LORA_LR (3e-6).
set -euo pipefail
export BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-7B-Instruct}
export EXPERIMENT_NAME=${EXPERIMENT_NAME:-amazon_c4-${RETRIEVER:-bm25}-qwen2.5-7b-lora-grpo}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_rec-amazon_c4_3b.sh" \
    actor_rollout_ref.model.lora_rank="${LORA_RANK:-64}" \
    actor_rollout_ref.model.lora_alpha="${LORA_ALPHA:-32}" \
    actor_rollout_ref.model.target_modules=all-linear \
    actor_rollout_ref.actor.optim.lr="${LORA_LR:-3e-6}" \
    "$@"
