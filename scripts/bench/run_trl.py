"""One TRL ``GRPOTrainer`` run on the benchmark's shared model, prompts and reward (runs in .venv-trl).

Writes one JSON object per optimizer step to ``--out`` (JSON lines):
``{"step", "step_s" (on_step_begin -> on_step_end), "cpu_s" (process CPU seconds in that span), "gen_s" (time inside GRPOTrainer._generate),
"completion_tokens" (completion tokens generated this step), "reward"}``.

Settings are chosen to match our trainer's GRPO run one to one: one optimizer update per step on the whole
generation batch (per_device_train_batch_size = prompts * group, no accumulation, num_iterations 1), no KL
(beta 0, no reference model), token-mean loss over the batch ("dapo"), group-std advantage scaling, AdamW with a
constant lr and no weight decay, grad clip 1.0, fp32, no gradient checkpointing, temperature 1, no top-k/top-p.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_task  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", required=True, help="folder written by bench_task.build_assets")
    p.add_argument("--out", required=True, help="JSON-lines file, one row per step")
    p.add_argument("--prompts-per-step", type=int, required=True)
    p.add_argument("--group", type=int, required=True, help="completions per prompt (num_generations)")
    p.add_argument("--response-length", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model_dir = os.path.join(args.assets, "model")
    with open(os.path.join(args.assets, "prompts.jsonl")) as f:
        prompts = [json.loads(line) for line in f if line.strip()]
    dataset = Dataset.from_list(prompts)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)

    batch = args.prompts_per_step * args.group
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl_bench_"),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        num_iterations=1,
        max_completion_length=args.response_length,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        mask_truncated_completions=False,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
        seed=args.seed,
    )

    rows: list[dict] = []
    gen_time = {"s": 0.0, "tokens": 0}
    original_generate = GRPOTrainer._generate

    def timed_generate(self, *a, **kw):
        start = time.perf_counter()
        out = original_generate(self, *a, **kw)
        gen_time["s"] += time.perf_counter() - start
        return out

    GRPOTrainer._generate = timed_generate  # measurement only: the method itself is unchanged

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.start = None
            self.last_reward = None

        def on_step_begin(self, args_, state, control, **kw):
            gen_time["s"] = 0.0
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_step_end(self, args_, state, control, **kw):
            rows.append({"step": state.global_step, "step_s": time.perf_counter() - self.start,
                         "cpu_s": time.process_time() - self.cpu_start,
                         "gen_s": gen_time["s"], "completion_tokens": None, "end_time": time.time()})

        def on_log(self, args_, state, control, logs=None, **kw):
            if logs and rows and "completions/mean_length" in logs:  # the per-step log, not the final summary
                rows[-1]["completion_tokens"] = float(logs["completions/mean_length"]) * batch
                rows[-1]["reward"] = logs.get("reward")
                rows[-1]["entropy"] = logs.get("entropy")
                print(f"[trl] step {rows[-1]['step']}/{args.steps} {rows[-1]['step_s']:.2f}s "
                      f"(gen {rows[-1]['gen_s']:.2f}) reward {rows[-1]['reward']}", flush=True)

    trainer = GRPOTrainer(model=model, reward_funcs=bench_task.trl_reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[StepTimer()])
    trainer.train()
    with open(args.out, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
