"""One benchmark run of either trainer: the command line, the subprocess, and the per-step numbers it produced.

Ours goes through the real entry point, ``verl.trainer.main_ppo.main`` (via run_ours.py, which adds a per-step
CPU-time record) with the in-process backend and the HF rollout; wall times and phases come from
``<default_local_dir>/metrics.jsonl`` (timing_s/*). TRL goes through ``run_trl.py`` in .venv-trl. Both get the
same environment (thread count, tokenizers parallelism off).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from typing import Optional

from proc_monitor import run_monitored

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(BENCH_DIR, "..", ".."))
OUR_TIMINGS = ("gen", "reward", "old_log_prob", "adv", "update_actor")


@dataclass(frozen=True)
class RunSpec:
    """The work of one run; identical for both sides. ``warmup`` first steps are excluded from the medians."""

    prompts_per_step: int
    group: int
    response_length: int
    steps: int
    warmup: int = 1
    lr: float = 1e-5
    seed: int = 1
    threads: int = 1

    @property
    def batch(self) -> int:
        """Completions per step."""
        return self.prompts_per_step * self.group


@dataclass
class RunResult:
    """Per-step numbers of one run (warmup steps excluded) plus whole-process numbers."""

    side: str
    spec: RunSpec
    step_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    gen_s: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    wall_s: float = 0.0
    returncode: int = 0
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and len(self.step_s) > 0

    def median(self, name: str) -> float:
        values = getattr(self, name) if name in ("step_s", "cpu_s", "gen_s", "tokens") else self.phases.get(name, [])
        return statistics.median(values) if values else float("nan")

    @property
    def steps_per_s(self) -> float:
        return 1.0 / self.median("step_s")

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of step time: median of tokens_i / step_s_i."""
        rates = [t / s for t, s in zip(self.tokens, self.step_s) if s > 0]
        return statistics.median(rates) if rates else float("nan")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(steps_per_s=self.steps_per_s if self.ok else None,
                 tokens_per_s=self.tokens_per_s if self.ok else None)
        return d


def child_env(threads: int) -> dict:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    env.update(TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def ours_overrides(spec: RunSpec, assets: str, meta: dict, out_dir: str) -> list[str]:
    """``verl.trainer.main_ppo`` overrides for GRPO on the shared work (one update per step)."""
    batch = spec.batch
    return [
        f"data.train_files={assets}/prompts.parquet", "data.val_files=null",
        f"data.max_prompt_length={meta['prompt_tokens']}", f"data.max_response_length={spec.response_length}",
        f"data.train_batch_size={spec.prompts_per_step}", "data.shuffle=True",
        f"actor_rollout_ref.model.path={assets}/model",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        "actor_rollout_ref.model.use_remove_padding=False",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={spec.prompts_per_step}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={batch}",
        "actor_rollout_ref.actor.ppo_epochs=1",
        f"actor_rollout_ref.actor.optim.lr={spec.lr}", "actor_rollout_ref.actor.optim.weight_decay=0.0",
        "actor_rollout_ref.actor.optim.warmup_style=constant",
        "actor_rollout_ref.actor.use_kl_loss=False", "actor_rollout_ref.actor.entropy_coeff=0.0",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean", "actor_rollout_ref.actor.grad_clip=1.0",
        "actor_rollout_ref.actor.clip_ratio=0.2",
        "actor_rollout_ref.rollout.name=hf", f"actor_rollout_ref.rollout.n={spec.group}",
        "actor_rollout_ref.rollout.temperature=1.0", "actor_rollout_ref.rollout.top_p=1.0",
        "actor_rollout_ref.rollout.top_k=-1", "actor_rollout_ref.rollout.do_sample=True",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={batch}",
        "algorithm.adv_estimator=grpo", "algorithm.norm_adv_by_std_in_grpo=True", "algorithm.use_kl_in_reward=False",
        f"custom_reward_function.path={BENCH_DIR}/bench_task.py", "custom_reward_function.name=compute_score",
        "reward_model.reward_manager=naive", "reward_model.num_examine=0",
        "trainer.backend=local", "trainer.device=cpu", "trainer.nnodes=1", "trainer.n_gpus_per_node=1",
        "trainer.logger=[console]", f"trainer.total_training_steps={spec.steps}", "trainer.total_epochs=1000",
        "trainer.val_before_train=False", "trainer.save_freq=-1", "trainer.test_freq=-1",
        "trainer.resume_mode=disable", f"trainer.seed={spec.seed}",
        "trainer.project_name=bench", "trainer.experiment_name=ours", f"trainer.default_local_dir={out_dir}/ckpt",
        f"hydra.run.dir={out_dir}/hydra", "hydra.output_subdir=null",
    ]


def ours_command(python: str, spec: RunSpec, assets: str, meta: dict, out_dir: str,
                 runner: Optional[str] = None) -> list[str]:
    """run_ours.py (main_ppo.main + per-step CPU time into ``out_dir/steps.jsonl``) with ``ours_overrides``;
    ``runner``: another script with run_ours.py's arguments (e.g. one that monkeypatches a proposed change)."""
    return [python, runner or os.path.join(BENCH_DIR, "run_ours.py"), os.path.join(out_dir, "steps.jsonl"),
            *ours_overrides(spec, assets, meta, out_dir)]


def trl_command(python: str, spec: RunSpec, assets: str, out_file: str) -> list[str]:
    return [
        python, os.path.join(BENCH_DIR, "run_trl.py"), "--assets", assets, "--out", out_file,
        "--prompts-per-step", str(spec.prompts_per_step), "--group", str(spec.group),
        "--response-length", str(spec.response_length), "--steps", str(spec.steps),
        "--lr", str(spec.lr), "--seed", str(spec.seed),
    ]


def _read_jsonl(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_ours(spec: RunSpec, assets: str, meta: dict, work_dir: str, python: str, timeout_s: float = 900.0,
             extra_overrides: Optional[list[str]] = None, runner: Optional[str] = None) -> RunResult:
    """Run our trainer once; per-step numbers from metrics.jsonl (rows after ``spec.warmup``)."""
    shutil.rmtree(work_dir, ignore_errors=True)
    cmd = ours_command(python, spec, assets, meta, work_dir, runner) + list(extra_overrides or [])
    proc = run_monitored(cmd, os.path.join(work_dir, "run.log"), env=child_env(spec.threads), cwd=ROOT,
                         timeout_s=timeout_s)
    result = RunResult(side="ours", spec=spec, peak_rss_mib=proc.peak_rss_mib, wall_s=proc.wall_s,
                       returncode=proc.returncode, log_path=proc.log_path)
    rows = [r for r in _read_jsonl(os.path.join(work_dir, "ckpt", "metrics.jsonl")) if "timing_s/step" in r]
    cpu = {r["step"]: r["cpu_s"] for r in _read_jsonl(os.path.join(work_dir, "steps.jsonl"))}
    for row in rows[spec.warmup:]:
        result.step_s.append(row["timing_s/step"])
        result.cpu_s.append(cpu.get(row["step"], float("nan")))
        result.gen_s.append(row.get("timing_s/gen", float("nan")))
        result.tokens.append(row.get("response_length/mean", spec.response_length) * spec.batch)
        for name in OUR_TIMINGS:
            if f"timing_s/{name}" in row:
                result.phases.setdefault(name, []).append(row[f"timing_s/{name}"])
    return result


def run_trl(spec: RunSpec, assets: str, work_dir: str, python: str, timeout_s: float = 900.0) -> RunResult:
    """Run TRL's GRPOTrainer once (run_trl.py in the TRL venv); per-step numbers from its JSON lines."""
    shutil.rmtree(work_dir, ignore_errors=True)
    out_file = os.path.join(work_dir, "steps.jsonl")
    cmd = trl_command(python, spec, assets, out_file)
    proc = run_monitored(cmd, os.path.join(work_dir, "run.log"), env=child_env(spec.threads), cwd=ROOT,
                         timeout_s=timeout_s)
    result = RunResult(side="trl", spec=spec, peak_rss_mib=proc.peak_rss_mib, wall_s=proc.wall_s,
                       returncode=proc.returncode, log_path=proc.log_path)
    for row in _read_jsonl(out_file)[spec.warmup:]:
        result.step_s.append(row["step_s"])
        result.cpu_s.append(row["cpu_s"])
        result.gen_s.append(row["gen_s"])
        tokens = row.get("completion_tokens")
        result.tokens.append(float(tokens) if tokens is not None else float(spec.batch * spec.response_length))
        result.phases.setdefault("gen", []).append(row["gen_s"])
        result.phases.setdefault("rest (log-prob + update)", []).append(row["step_s"] - row["gen_s"])
    return result
