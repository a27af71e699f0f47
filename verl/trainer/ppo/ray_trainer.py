"""The PPO / GRPO fit loop on the driver (verl's RayPPOTrainer), for the Ray and the in-process backends.

One step: prompts -> generate (each prompt rollout.n times) -> reward -> old log-probs (skipped when the batch
gets exactly one update: actor.recompute_old_log_prob) -> ref log-probs -> values -> (KL in reward) -> advantages
-> update critic -> update actor -> metrics, validation, checkpoint. With reward_model.launch_reward_fn_async (by
default under the Ray backend) the reward runs on a driver thread during the log-prob / reference / value passes
(async_reward.py).
The driver never reaches into a worker: every arrow is a registered worker-group call.
"""
from __future__ import annotations

import functools
import os
import uuid
from enum import Enum
from typing import Callable, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from verl.protocol import DataProto
from verl.single_controller import ClassWithInitArgs, make_worker_groups
from verl.trainer.config_check import (need_critic, need_old_log_prob_pass, need_reference_policy, set_device_keys,
                                       world_size)
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.advantage import apply_kl_penalty, compute_advantage, compute_response_mask
from verl.trainer.ppo.async_reward import RewardLauncher, launch_reward_async
from verl.trainer.ppo.filter_groups import GroupCollector, accumulate_round_metrics, describe_progress
from verl.trainer.ppo.generation_logs import (decode_samples, describe_rows, dump_generations, generation_rows,
                                              load_describe_hook, pick_logged_rows)
from verl.trainer.ppo.metric_utils import (compute_data_metrics, compute_memory_metrics, compute_reward_extra_metrics,
                                           compute_throughout_metrics, compute_timing_metrics, pop_worker_metrics,
                                           process_validation_metrics, timer)
from verl.trainer.ppo.reward import compute_reward
from verl.trainer.ppo.seqlen_balancing import balance_order
from verl.utils.checkpoint import trainer_checkpoint as ckpt
from verl.utils.dataset import ResumableDataLoader, RLHFDataset, collate_fn as default_collate_fn
from verl.utils.device_plan import resolve_cluster_device
from verl.utils.generations_logger import ValidationGenerationsLogger
from verl.utils.tracking import Tracking

__all__ = ["Role", "RayPPOTrainer", "apply_kl_penalty", "compute_advantage", "compute_response_mask"]

GEN_INPUT_KEYS = ["input_ids", "attention_mask", "position_ids"]


class Role(Enum):
    """verl's worker roles."""

    Actor = 0
    Rollout = 1
    ActorRollout = 2
    Critic = 3
    RefPolicy = 4
    RewardModel = 5
    ActorRolloutRef = 6


class RayPPOTrainer:
    """Runs PPO / GRPO / RLOO / REINFORCE++ / ReMax from a validated config (see config_check.validate_config).

    Args:
        config: the full ppo_trainer config.
        tokenizer: the actor's tokenizer (datasets, eos / pad ids for generation).
        reward_fn, val_reward_fn: reward managers (verl.trainer.ppo.reward.load_reward_manager).
        role_worker_mapping: {Role.ActorRollout: cls, Role.Critic: cls}; default: verl.workers.fsdp_workers.
        train_dataset, val_dataset: default RLHFDataset(data.train_files / data.val_files).
    """

    def __init__(self, config: DictConfig, tokenizer, reward_fn: Callable, val_reward_fn: Optional[Callable] = None,
                 role_worker_mapping: Optional[dict] = None, train_dataset=None, val_dataset=None, collate_fn=None):
        self.config = config
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.val_reward_fn = val_reward_fn
        self.role_worker_mapping = role_worker_mapping
        self.use_critic = need_critic(config)
        self.use_reference_policy = need_reference_policy(config)
        self.use_old_log_prob_pass = need_old_log_prob_pass(config)
        self.world_size = world_size(config)
        self.kl_ctrl_in_reward = core_algos.get_kl_controller(config.algorithm.kl_ctrl) \
            if config.algorithm.use_kl_in_reward else None
        self.reward_launcher = RewardLauncher(functools.partial(compute_reward, reward_fn=reward_fn)) \
            if launch_reward_async(config) else None
        self.global_steps = 0
        self._worker_groups: list = []
        self.collate_fn = collate_fn or default_collate_fn
        self._train_batches = None  # one iterator over the epochs, shared by the steps and their extra rounds
        self.tracker: Optional[Tracking] = None  # set by fit(); validation tables go to its wandb / tensorboard
        self._val_table = ValidationGenerationsLogger()
        self._describe_hook: Optional[Callable] = None  # the reward's describe_generations, loaded at first use
        self._create_dataloaders(train_dataset, val_dataset)

    # -- data ------------------------------------------------------------------------------------
    def _create_dataloaders(self, train_dataset, val_dataset) -> None:
        data, trainer = self.config.data, self.config.trainer
        self.train_dataset = train_dataset if train_dataset is not None else \
            RLHFDataset(data.train_files, self.tokenizer, data)
        if val_dataset is None and data.get("val_files") and self.val_reward_fn is not None:
            val_dataset = RLHFDataset(data.val_files, self.tokenizer, data)
        self.val_dataset = val_dataset
        seed = data.seed if data.get("seed") is not None else trainer.seed
        # verl: batches of gen_batch_size prompts (default train_batch_size; larger for dynamic sampling)
        gen_batch_size = int(data.get("gen_batch_size", None) or data.train_batch_size)
        self.train_dataloader = ResumableDataLoader(self.train_dataset, gen_batch_size, self.collate_fn,
                                                    shuffle=bool(data.shuffle), seed=int(seed), drop_last=True)
        total = len(self.train_dataloader) * int(trainer.total_epochs)
        if trainer.total_training_steps is not None:
            total = int(trainer.total_training_steps)
        self.total_training_steps = total
        with open_dict(self.config):
            self.config.actor_rollout_ref.actor.optim.total_training_steps = total
            self.config.critic.optim.total_training_steps = total
        print(f"[trainer] {len(self.train_dataset)} train prompts, {len(self.train_dataloader)} steps per epoch, "
              f"{total} steps in total", flush=True)

    # -- workers ---------------------------------------------------------------------------------
    def init_workers(self) -> None:
        """Start the worker groups (actor+rollout[+ref] and, for GAE, the critic, colocated; rank r seeded with
        trainer.seed + r) and load the models. ``shutdown()`` (which ``fit`` calls at its end) stops them."""
        mapping = self.role_worker_mapping
        if mapping is None:
            from verl.workers.fsdp_workers import ActorRolloutRefWorker, CriticWorker

            mapping = {Role.ActorRollout: ActorRolloutRefWorker, Role.Critic: CriticWorker}
        cfg, t = self.config, self.config.trainer
        if cfg.actor_rollout_ref.rollout.get("seed") is None:  # the sampling stream follows trainer.seed
            with open_dict(cfg):
                cfg.actor_rollout_ref.rollout.seed = int(t.seed)
        role_classes = {"actor_rollout": ClassWithInitArgs(
            mapping[Role.ActorRollout], config=cfg.actor_rollout_ref,
            role="actor_rollout_ref" if self.use_reference_policy else "actor_rollout")}
        if self.use_critic:
            role_classes["critic"] = ClassWithInitArgs(mapping[Role.Critic], config=cfg.critic)
        device = self._resolve_worker_device()
        groups = make_worker_groups(t.backend, role_classes,
                                    resource_pool_spec={"global_pool": [int(t.n_gpus_per_node)] * int(t.nnodes)},
                                    use_gpu=device == "cuda", seed=int(t.seed))
        self._worker_groups = list(groups.values())
        try:
            if self.use_critic:
                self.critic_wg = groups["critic"]
                self.critic_wg.init_model()
            self.actor_rollout_wg = groups["actor_rollout"]
            self.ref_policy_wg = self.actor_rollout_wg if self.use_reference_policy else None
            self.actor_rollout_wg.init_model()
        except BaseException:
            self.shutdown()
            raise

    def _resolve_worker_device(self) -> str:
        """trainer.device from where the workers run (Ray: the cluster's GPU resources, joined or started here with
        ``ray_init``; local: this process), written into the config the workers receive (set_device_keys)."""
        t = self.config.trainer
        if t.backend == "ray":
            import ray

            if not ray.is_initialized():
                ray_init = {k: v for k, v in OmegaConf.to_container(self.config.ray_init, resolve=True).items()
                            if v is not None}
                ray_init.setdefault("runtime_env", {"env_vars": {"TOKENIZERS_PARALLELISM": "true",
                                                                 "NCCL_DEBUG": "WARN"}})
                ray_init.setdefault("include_dashboard", False)
                ray.init(**ray_init)
            resources = ray.cluster_resources()
            gpus, where = float(resources.get("GPU", 0)), f"the Ray cluster (resources {resources})"
        else:
            gpus, where = torch.cuda.device_count(), "this process (trainer.backend=local)"
        device = resolve_cluster_device(str(t.device), gpus, self.world_size, where)
        set_device_keys(self.config, device)
        print(f"[trainer] workers run on {device} ({where.split(' (')[0]} has {gpus:g} GPU(s))", flush=True)
        return device

    def shutdown(self) -> None:
        """Stop the worker groups and give their resources back (Ray actors and placement groups); idempotent."""
        groups, self._worker_groups = self._worker_groups, []
        for group in groups:
            group.shutdown()
        if self.reward_launcher is not None:
            self.reward_launcher.shutdown()

    # -- one step --------------------------------------------------------------------------------
    def _generation_meta(self, **extra) -> dict:
        """meta_info for ``generate_sequences``. No ``eos_token_id``: the rollout worker fills in every EOS id of the
        model (generation_config.json's list + the tokenizer's), which the driver's tokenizer alone would miss
        (Qwen2.5-Instruct also ends with <|endoftext|>)."""
        return {"pad_token_id": self._pad_token_id(), **extra}

    def _pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id

    def _generate(self, batch: DataProto, timing_raw: dict, metrics: dict) -> DataProto:
        """Repeat each prompt rollout.n times (interleaved), generate, and join prompts with responses."""
        rollout = self.config.actor_rollout_ref.rollout
        n = int(rollout.n)
        batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
        prompts = batch.pop(batch_keys=GEN_INPUT_KEYS)
        gen_batch = prompts.repeat(n, interleave=True)
        gen_batch.meta_info = self._generation_meta(do_sample=bool(rollout.do_sample))
        with timer("gen", timing_raw):
            gen_out = self.actor_rollout_wg.generate_sequences(gen_batch)
        metrics.update(pop_worker_metrics(gen_out))
        baselines = None
        if self.config.algorithm.adv_estimator == "remax":
            with timer("gen_max", timing_raw):
                baselines = self._greedy_baseline(prompts, batch.non_tensor_batch)
        batch = batch.repeat(n, interleave=True).union(gen_out)
        if baselines is not None:
            batch.batch["reward_baselines"] = baselines.repeat_interleave(n)
        if "response_mask" not in batch.batch.keys():
            batch.batch["response_mask"] = compute_response_mask(batch)
        return batch

    def _greedy_baseline(self, prompts: DataProto, non_tensors: dict) -> torch.Tensor:
        """ReMax's baseline: the reward of the greedy response to each prompt, [num_prompts]."""
        greedy = DataProto(batch=prompts.batch, meta_info=self._generation_meta(do_sample=False))
        out = self.actor_rollout_wg.generate_sequences(greedy)
        pop_worker_metrics(out)  # the sampled generation's metrics are the step's
        out.non_tensor_batch = {**dict(non_tensors), **out.non_tensor_batch}
        reward, _ = compute_reward(out, self.reward_fn)
        return reward.sum(-1)

    def _balance_batch(self, batch: DataProto, metrics: dict, reward_extra: Optional[dict] = None) -> None:
        """Reorder the rows (and the scorer's per-row extras, when given) so every rank gets about as many tokens."""
        if self.world_size <= 1:
            return
        order, balance_metrics = balance_order(batch.batch["attention_mask"], self.world_size)
        batch.reorder(order)
        for key, values in (reward_extra or {}).items():
            if len(values) == len(order):
                reward_extra[key] = [values[i] for i in order]
        metrics.update(balance_metrics)

    def _generate_and_score(self, batch: DataProto, timing_raw: dict, metrics: dict) -> tuple[DataProto, dict]:
        """One generation round: responses for the prompts and their token_level_scores [B, R]; returns the batch and
        the scorer's extras {key: B values}."""
        batch = self._generate(batch, timing_raw, metrics)
        with timer("reward", timing_raw):
            batch.batch["token_level_scores"], reward_extra = compute_reward(batch, self.reward_fn)
        return batch, reward_extra

    def _sample(self, batch: DataProto, timing_raw: dict, metrics: dict) -> tuple[DataProto, dict]:
        """The scored batch to train on. With algorithm.filter_groups.enable (DAPO's dynamic sampling), groups whose
        metric has no spread are dropped and further batches of prompts are generated (pulled from the same loader,
        so a checkpoint's loader state counts them) until data.train_batch_size groups remain; see filter_groups."""
        if not self.config.algorithm.filter_groups.enable:
            return self._generate_and_score(batch, timing_raw, metrics)
        collector = GroupCollector.from_config(self.config, self.world_size)
        while True:
            round_metrics: dict = {}
            scored, extra = self._generate_and_score(batch, timing_raw, round_metrics)
            accumulate_round_metrics(metrics, round_metrics)
            collector.add(scored, extra)
            progress = describe_progress(collector)
            if progress is None:
                break
            print(progress, flush=True)
            batch = self._next_train_batch()
        batch, reward_extra, filter_metrics = collector.finish()
        metrics.update(filter_metrics)
        batch.meta_info["num_gen_response_tokens"] = collector.gen_response_tokens
        return batch, reward_extra

    def train_step(self, batch: DataProto, timing_raw: dict) -> tuple[DataProto, dict]:
        """Everything from prompts to updated weights; returns the finished batch and the step's metrics."""
        cfg, alg = self.config, self.config.algorithm
        metrics: dict = {}
        pending_reward = None
        if self.reward_launcher is not None:  # the reward runs while the passes below do (launch_reward_fn_async)
            batch = self._generate(batch, timing_raw, metrics)
        else:
            batch, reward_extra = self._sample(batch, timing_raw, metrics)
        if cfg.trainer.balance_batch:
            self._balance_batch(batch, metrics, None if self.reward_launcher is not None else reward_extra)
        if self.reward_launcher is not None:
            pending_reward = self.reward_launcher.launch(batch)
        batch.meta_info["global_token_num"] = batch.batch["attention_mask"].sum(-1).tolist()
        batch.meta_info["temperature"] = float(cfg.actor_rollout_ref.rollout.temperature)
        if self.use_old_log_prob_pass:  # else the update uses its own log-probs (see need_old_log_prob_pass)
            with timer("old_log_prob", timing_raw):
                old = self.actor_rollout_wg.compute_log_prob(batch)
                entropys = old.batch.pop("entropys", None) if "entropys" in old.batch.keys() else None
                if entropys is not None:
                    mask = batch.batch["response_mask"]
                    metrics["actor/entropy"] = ((entropys * mask).sum() / mask.sum().clamp(min=1)).item()
                metrics.update(pop_worker_metrics(old))
                batch = batch.union(old)
        if self.use_reference_policy:
            with timer("ref", timing_raw):
                ref = self.ref_policy_wg.compute_ref_log_prob(batch)
                metrics.update(pop_worker_metrics(ref))
                batch = batch.union(ref)
        if self.use_critic:
            with timer("values", timing_raw):
                values = self.critic_wg.compute_values(batch)
                metrics.update(pop_worker_metrics(values))
                batch = batch.union(values)
        if pending_reward is not None:
            batch.batch["token_level_scores"], reward_extra = pending_reward.result(timing_raw)
        metrics.update(compute_reward_extra_metrics(
            reward_extra, categorical_keys=tuple(self.config.reward_model.get("categorical_extra_keys", ["reason"]))))
        self._dump_rollouts(batch, reward_extra)
        with timer("adv", timing_raw):
            if alg.use_kl_in_reward:
                batch, kl_metrics = apply_kl_penalty(batch, self.kl_ctrl_in_reward, alg.kl_penalty)
                metrics.update(kl_metrics)
            else:
                batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
            batch = compute_advantage(batch, alg.adv_estimator, gamma=alg.gamma, lam=alg.lam,
                                      num_repeat=int(cfg.actor_rollout_ref.rollout.n),
                                      norm_adv_by_std_in_grpo=alg.norm_adv_by_std_in_grpo)
        if self.use_critic:
            with timer("update_critic", timing_raw):
                out = self.critic_wg.update_critic(batch)
            metrics.update(pop_worker_metrics(out))
        if int(cfg.trainer.critic_warmup) <= self.global_steps:  # verl's rule (steps count from 1)
            with timer("update_actor", timing_raw):
                batch.meta_info["multi_turn"] = False
                out = self.actor_rollout_wg.update_actor(batch)
            metrics.update(pop_worker_metrics(out))
        return batch, metrics

    # -- validation ------------------------------------------------------------------------------
    def _validate(self) -> dict[str, float]:
        """Generate for the whole val set (rollout.val_kwargs, greedy by default) and score it:
        val-core/<data_source>/reward/mean, val-core/<data_source>/<key> for the scorer extras named in
        reward_model.val_core_extra_keys, val-aux/<data_source>/<key>/mean for other numeric extras and
        val-aux/<data_source>/<key>/<value> fractions for reward_model.categorical_extra_keys; the samples go to
        trainer.validation_data_dir and the generations table (_log_val_generations).

        Generation goes in chunks of data.val_batch_size prompts (x val_kwargs.n samples; null: one chunk), so no
        rollout holds the whole val set at once; the reward then scores the joined set in one call, so the metrics
        do not depend on the chunk size."""
        if self.val_dataset is None or self.val_reward_fn is None:
            return {}
        val_kwargs = self.config.actor_rollout_ref.rollout.val_kwargs
        n = int(val_kwargs.n)
        batch = DataProto.from_single_dict(self.collate_fn([self.val_dataset[i] for i in range(len(self.val_dataset))]))
        batch = batch.repeat(n, interleave=True)
        gen = batch.pop(batch_keys=GEN_INPUT_KEYS)
        gen.meta_info = self._generation_meta(do_sample=bool(val_kwargs.do_sample), validate=True)
        chunk_prompts = self.config.data.get("val_batch_size", None)
        rows_per_call = int(chunk_prompts) * n if chunk_prompts else len(gen)
        outputs = []
        for chunk in gen.split(rows_per_call):
            out = self.actor_rollout_wg.generate_sequences(chunk)
            pop_worker_metrics(out)  # validation is timed as a whole (timing_s/testing)
            outputs.append(out)
        batch = batch.union(DataProto.concat(outputs))
        reward_tensor, extra = compute_reward(batch, self.val_reward_fn)
        scores = reward_tensor.sum(-1).tolist()
        sources = list(batch.non_tensor_batch.get("data_source", np.array(["unknown"] * len(batch), dtype=object)))
        self._log_val_generations(batch, scores, extra, sources)
        rm = self.config.reward_model
        return process_validation_metrics(sources, scores, extra, core_keys=tuple(rm.get("val_core_extra_keys") or ()),
                                          categorical_keys=tuple(rm.get("categorical_extra_keys") or ()))

    def _log_val_generations(self, batch: DataProto, scores: list[float], extra: dict, sources: list) -> None:
        """Every val sample to <trainer.validation_data_dir>/<step>.jsonl; trainer.log_val_generations of them (verl's
        fixed pick), with the task's display columns (generation_logs.describe_rows), printed and logged as the
        val/generations table to wandb / tensorboard."""
        t = self.config.trainer
        count, folder = int(t.log_val_generations or 0), t.get("validation_data_dir")
        if count <= 0 and not folder:
            return
        inputs, outputs = decode_samples(batch, self.tokenizer)
        rows = generation_rows(inputs, outputs, scores, self.global_steps, extra, sources)
        picked = pick_logged_rows(inputs, count)
        if picked and self._describe_hook is None:
            self._describe_hook = load_describe_hook(self.config) or (lambda rows: [{} for _ in rows])
        shown, display = describe_rows(self._describe_hook, [rows[i] for i in picked])
        for i, row in zip(picked, shown):
            rows[i] = row
        if folder:
            dump_generations(folder, self.global_steps, rows)
        for row in shown:
            score = row["score"]
            print(f"[val] score={score:.3f} response={row['output']!r}" if isinstance(score, float) else
                  f"[val] score={score} response={row['output']!r}", flush=True)
        if self.tracker is not None:
            self._val_table.log(self.tracker, ["step", "data_source", "input", "output", *display, "score"], shown,
                                self.global_steps)

    def _dump_rollouts(self, batch: DataProto, reward_extra: dict) -> None:
        """With trainer.rollout_data_dir: the step's samples (input, output, score, step, data_source, the scorer's
        extras) to <trainer.rollout_data_dir>/<step>.jsonl."""
        folder = self.config.trainer.get("rollout_data_dir")
        if not folder:
            return
        inputs, outputs = decode_samples(batch, self.tokenizer)
        sources = batch.non_tensor_batch.get("data_source")
        rows = generation_rows(inputs, outputs, batch.batch["token_level_scores"].sum(-1).tolist(), self.global_steps,
                               reward_extra, None if sources is None else list(sources))
        dump_generations(folder, self.global_steps, rows)

    # -- checkpoints -----------------------------------------------------------------------------
    def _checkpoints_to_keep(self) -> Optional[int]:
        """The rule for pruning whole global_step_N folders: the larger of the actor's and critic's limits
        (a null limit keeps everything)."""
        t = self.config.trainer
        limits = [t.max_actor_ckpt_to_keep] + ([t.max_critic_ckpt_to_keep] if self.use_critic else [])
        return None if any(x is None for x in limits) else max(int(x) for x in limits)

    def _save_checkpoint(self) -> None:
        root = self.config.trainer.default_local_dir
        path = ckpt.step_dir(root, self.global_steps)
        self.actor_rollout_wg.save_checkpoint(os.path.join(path, "actor"), None, self.global_steps, None)
        if self.use_critic:
            self.critic_wg.save_checkpoint(os.path.join(path, "critic"), None, self.global_steps, None)
        driver_state = {"global_step": self.global_steps}
        if self.kl_ctrl_in_reward is not None:
            driver_state["kl_coef"] = self.kl_ctrl_in_reward.value
        ckpt.save_driver_state(path, self.train_dataloader.state_dict(), driver_state)
        ckpt.write_tracker(root, self.global_steps)
        for removed in ckpt.prune_checkpoints(root, self._checkpoints_to_keep()):
            print(f"[trainer] removed old checkpoint {removed}", flush=True)

    def _load_checkpoint(self) -> int:
        """Resume per trainer.resume_mode; returns the step resumed from (0: from scratch)."""
        t = self.config.trainer
        path = ckpt.resolve_resume_path(str(t.resume_mode), t.default_local_dir)
        if path is None:
            print("[trainer] training from scratch", flush=True)
            return 0
        step = ckpt.parse_global_step(path)
        print(f"[trainer] resuming from {path} (step {step})", flush=True)
        self.actor_rollout_wg.load_checkpoint(os.path.join(path, "actor"), None, bool(t.del_local_ckpt_after_load))
        if self.use_critic:
            self.critic_wg.load_checkpoint(os.path.join(path, "critic"), None, bool(t.del_local_ckpt_after_load))
        loader_state, driver_state = ckpt.load_driver_state(path)
        self.train_dataloader.load_state_dict(loader_state)
        ckpt.set_rng_state(driver_state["rng"])
        if self.kl_ctrl_in_reward is not None and "kl_coef" in driver_state:
            self.kl_ctrl_in_reward.value = driver_state["kl_coef"]
        self.global_steps = step
        return step

    # -- the loop --------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train until trainer.total_training_steps; returns the last step's metrics (with the final
        validation's). The worker groups are shut down when it returns or raises."""
        t = self.config.trainer
        try:
            tracker = Tracking(project_name=t.project_name, experiment_name=t.experiment_name,
                               default_backend=t.logger, config=OmegaConf.to_container(self.config, resolve=True),
                               local_dir=t.default_local_dir, total_steps=self.total_training_steps)
            self.tracker = tracker
            try:
                return self._fit(tracker)
            finally:
                tracker.finish()
        finally:
            self.shutdown()

    def _fit(self, tracker: Tracking) -> dict[str, float]:
        t = self.config.trainer
        self._load_checkpoint()
        if self.global_steps >= self.total_training_steps:
            print(f"[trainer] already at step {self.global_steps} of {self.total_training_steps}; nothing to do")
            return {}
        if t.val_before_train and self.val_reward_fn is not None:
            rng = ckpt.rng_state()  # validation must not change what training samples next
            val_metrics = self._validate()
            ckpt.set_rng_state(rng)
            if val_metrics:
                tracker.log(val_metrics, step=self.global_steps)
            if t.val_only:
                return val_metrics
        self.global_steps += 1
        while True:
            metrics = self._run_step(self._next_train_batch())
            tracker.log(metrics, step=self.global_steps)
            if self.global_steps >= self.total_training_steps:
                return metrics
            self.global_steps += 1

    def _next_train_batch(self) -> DataProto:
        """The next batch of prompts; the loader goes on into the next epoch when one runs out (also in the middle of
        a step's dynamic-sampling rounds, as verl does)."""
        if self._train_batches is None:
            self._train_batches = self._iter_train_batches()
        return next(self._train_batches)

    def _iter_train_batches(self):
        while True:
            for batch_dict in self.train_dataloader:
                yield DataProto.from_single_dict(batch_dict)

    def _run_step(self, batch: DataProto) -> dict[str, float]:
        t = self.config.trainer
        is_last_step = self.global_steps >= self.total_training_steps
        timing_raw: dict[str, float] = {}
        with timer("step", timing_raw):
            batch, metrics = self.train_step(batch, timing_raw)
            if self.val_reward_fn is not None and int(t.test_freq) > 0 and \
                    (is_last_step or self.global_steps % int(t.test_freq) == 0):
                with timer("testing", timing_raw):
                    rng = ckpt.rng_state()
                    metrics.update(self._validate())
                    ckpt.set_rng_state(rng)
            if int(t.save_freq) > 0 and (is_last_step or self.global_steps % int(t.save_freq) == 0):
                with timer("save_checkpoint", timing_raw):
                    self._save_checkpoint()
        metrics.update({"training/global_step": self.global_steps, "training/epoch": self.train_dataloader.epoch})
        metrics.update(compute_data_metrics(batch, use_critic=self.use_critic))
        metrics.update(compute_timing_metrics(batch, timing_raw))
        metrics.update(compute_throughout_metrics(batch, timing_raw, n_gpus=self.world_size))
        metrics.update(compute_memory_metrics())
        return metrics

