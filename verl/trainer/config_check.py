"""Check a PPO config before any worker starts: unknown keys, legacy keys, and batch arithmetic.

Every problem is reported at once, each naming the keys and values involved, so a user fixes a command
line in one go instead of one crash per launch.
"""
from __future__ import annotations

import difflib
import importlib.util
import logging
import os
from typing import Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from verl.utils.checkpoint.checkpoint_contents import checkpoint_contents_errors

logger = logging.getLogger(__name__)

CONFIG_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "configs"))
PPO_SCHEMA_PATH = os.path.join(CONFIG_DIR, "ppo_trainer.yaml")
SFT_SCHEMA_PATH = os.path.join(CONFIG_DIR, "sft_trainer.yaml")

GROUP_ESTIMATORS = ("grpo", "rloo")  # compare samples of the same prompt: need rollout.n > 1
KL_ESTIMATORS = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")
TRUNCATIONS = ("error", "left", "right", "middle")
LOGGERS = ("console", "wandb", "tensorboard", "jsonl")
# Top-level maps whose children are free-form (besides every map whose default is {} or null).
OPEN_SECTIONS = ("ray_init",)


class ConfigError(ValueError):
    """A config that cannot run; the message lists every problem found."""


def _leaf_paths(node, prefix: str = "") -> Iterable[str]:
    """Yield the dotted path of every leaf (and every empty map) under a DictConfig."""
    if isinstance(node, DictConfig):
        keys = list(node.keys())
        if not keys and prefix:
            yield prefix
        for key in keys:
            path = f"{prefix}.{key}" if prefix else str(key)
            yield from _leaf_paths(node._get_node(key), path)
    else:
        yield prefix


def _schema_value(schema: DictConfig, path: str):
    """(found, value) of a dotted path in the schema, without resolving interpolations."""
    node = schema
    for part in path.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node._get_node(part)
    return True, node


def _is_open(schema: DictConfig, path: str) -> bool:
    """True if ``path`` lies under a free-form map: an OPEN_SECTION, a ``{}`` default or a ``null`` default."""
    parts = path.split(".")
    if parts[0] in OPEN_SECTIONS:
        return True
    for i in range(1, len(parts)):
        found, node = _schema_value(schema, ".".join(parts[:i]))
        if not found:
            return False
        if isinstance(node, DictConfig) and len(node) == 0:
            return True
        if not isinstance(node, (DictConfig, ListConfig)) and node._is_none():
            return True
    return False


def suggest_keys(key: str, known: list[str]) -> list[str]:
    """Up to three known keys close to ``key`` (same leaf name first, then by spelling)."""
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == leaf and k != key]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.75)
    leaf_close = [k for k in known if difflib.SequenceMatcher(None, k.rsplit(".", 1)[-1], leaf).ratio() > 0.8]
    out: list[str] = []
    for k in same_leaf + close + sorted(leaf_close, key=lambda k: -difflib.SequenceMatcher(None, k, key).ratio()):
        if k not in out:
            out.append(k)
    return out[:3]


def load_schema(path: str = PPO_SCHEMA_PATH) -> DictConfig:
    """The raw ppo_trainer.yaml: the set of known keys."""
    return OmegaConf.load(path)


def unknown_key_errors(config: DictConfig, schema: DictConfig) -> list[str]:
    """One message per key of ``config`` that the schema does not know (outside the open maps)."""
    known = list(_leaf_paths(schema))
    errors = []
    for path in _leaf_paths(config):
        found, _ = _schema_value(schema, path)
        if found or _is_open(schema, path):
            continue
        # a key inside a new sub-map is reported once, at its first unknown level
        parts = path.split(".")
        first_unknown = next(".".join(parts[: i + 1]) for i in range(len(parts))
                             if not _schema_value(schema, ".".join(parts[: i + 1]))[0])
        hint = suggest_keys(first_unknown, known)
        msg = f"unknown config key '{first_unknown}'"
        if hint:
            msg += f" (did you mean: {', '.join(hint)}?)"
        if msg not in errors:
            errors.append(msg)
    return errors


def rewrite_overrides(overrides: list[str], base: DictConfig, schema: DictConfig) -> list[str]:
    """Check command-line overrides against the composed base config and make old scripts work.

    - ``key=value`` for an unknown key raises ConfigError naming the key (with suggestions);
    - ``+key=value`` for a key that already exists becomes ``++key=value`` (old verl / TinyZero scripts use
      ``+trainer.val_before_train=False``; hydra >= 1.1 would refuse it);
    - ``key=value`` under an open map (override_config, reward_kwargs, ...) becomes ``++key=value``.
    Hydra's own arguments (``--cfg``, ``hydra.*``, ...) pass through untouched.
    """
    known = list(_leaf_paths(schema))
    out, errors = [], []
    for arg in overrides:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        lhs, value = arg.split("=", 1)
        prefix = lhs[: len(lhs) - len(lhs.lstrip("+~"))]
        key = lhs[len(prefix):]
        if key.startswith("hydra.") or key == "hydra" or "@" in key:
            out.append(arg)
            continue
        exists = OmegaConf.select(base, key, default="__missing__", throw_on_missing=False) != "__missing__" \
            or _key_present(base, key)
        if exists and prefix == "+":
            out.append(f"++{key}={value}")
        elif not exists and prefix == "" and _is_open(schema, key):
            out.append(f"++{key}={value}")
        elif not exists and prefix == "":
            hint = suggest_keys(key, known)
            errors.append(f"unknown config key '{key}' in '{arg}'"
                          + (f" (did you mean: {', '.join(hint)}?)" if hint else ""))
        else:
            out.append(arg)
    if errors:
        raise ConfigError("Bad command-line overrides:\n  - " + "\n  - ".join(errors)
                          + "\nTo add a new key on purpose (only under an open map such as "
                            "actor_rollout_ref.model.override_config), write +key=value.")
    return out


def compose_config(config_name: str, overrides: list[str] | None = None, config_dir: str = CONFIG_DIR) -> DictConfig:
    """Hydra-compose ``config_name`` from ``config_dir`` with ``overrides`` (as the command line would)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name=config_name, overrides=list(overrides or []))


def _config_name_from_argv(argv: list[str], default: str) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--config-name="):
            return arg.split("=", 1)[1]
        if arg in ("--config-name", "-cn") and i + 1 < len(argv):
            return argv[i + 1]
    return default


def check_cli_overrides(argv: list[str], default_config_name: str, schema_path: str) -> list[str]:
    """``rewrite_overrides`` for a command line (hydra flags pass through); returns the argv to hand to hydra.

    Skipped when the user points hydra at another config folder or asks for help.
    """
    if any(a.startswith(("--config-path", "-cp", "--config-dir", "--help", "-h", "--hydra-help")) for a in argv):
        return argv
    base = compose_config(_config_name_from_argv(argv, default_config_name))
    return rewrite_overrides(argv, base, load_schema(schema_path))


def _key_present(cfg: DictConfig, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def apply_legacy_keys(config: DictConfig) -> None:
    """Rewrite legacy keys (listed at the top of ppo_trainer.yaml) into their current form, in place."""
    with open_dict(config):
        for section in (config.actor_rollout_ref.actor, config.critic):
            if section.strategy == "fsdp":
                section.strategy = "fsdp2"
        t = config.trainer
        if t.resume_mode == "resume_path":
            if not t.resume_from_path:
                raise ConfigError("trainer.resume_mode=resume_path needs trainer.resume_from_path=<global_step_N folder>")
            t.resume_mode = str(t.resume_from_path)
        if t.val_generations_to_log_to_wandb is not None and not t.log_val_generations:
            t.log_val_generations = t.val_generations_to_log_to_wandb
        if t.remove_previous_ckpt_in_save:
            t.max_actor_ckpt_to_keep = t.max_actor_ckpt_to_keep or 1
            t.max_critic_ckpt_to_keep = t.max_critic_ckpt_to_keep or 1
    for name, fsdp in (("actor_rollout_ref.actor", config.actor_rollout_ref.actor.fsdp_config),
                       ("critic.model", config.critic.model.fsdp_config)):
        if fsdp.grad_offload:
            logger.warning("%s.fsdp_config.grad_offload=True is a legacy FSDP1 option and is ignored under FSDP2.", name)


def world_size(config: DictConfig) -> int:
    """Number of worker ranks: nnodes x n_gpus_per_node (worker processes per node on CPU)."""
    return int(config.trainer.nnodes) * int(config.trainer.n_gpus_per_node)


def need_reference_policy(config: DictConfig) -> bool:
    return bool(config.algorithm.use_kl_in_reward or config.actor_rollout_ref.actor.use_kl_loss)


def need_critic(config: DictConfig) -> bool:
    return config.algorithm.adv_estimator == "gae"


def recompute_old_log_prob_mode(config: DictConfig):
    """``actor_rollout_ref.actor.recompute_old_log_prob`` as "auto", True or False (strings "true" / "false" too);
    None when the value is none of these."""
    value = config.actor_rollout_ref.actor.get("recompute_old_log_prob", "auto")
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"auto": "auto", "true": True, "false": False}.get(text)


def old_log_prob_shortcut_blockers(config: DictConfig) -> list[str]:
    """Why the update's own (detached) log-probs cannot stand in for the old policy's; empty when they can.

    They can when every batch gets exactly one optimizer step (the old policy is then the current one) and
    nothing else reads the old log-probs before the update.
    """
    actor, reasons = config.actor_rollout_ref.actor, []
    if int(actor.ppo_epochs) != 1:
        reasons.append(f"actor_rollout_ref.actor.ppo_epochs={actor.ppo_epochs} (needs 1)")
    if int(actor.ppo_mini_batch_size) != int(config.data.train_batch_size):
        reasons.append(f"actor_rollout_ref.actor.ppo_mini_batch_size={actor.ppo_mini_batch_size} != "
                       f"data.train_batch_size={config.data.train_batch_size} (more than one optimizer step a batch)")
    if config.algorithm.use_kl_in_reward:
        reasons.append("algorithm.use_kl_in_reward=True (the KL penalty in the reward reads the old log-probs)")
    return reasons


def need_old_log_prob_pass(config: DictConfig) -> bool:
    """Whether the trainer runs the separate old-policy log-prob forward before the update: always with
    recompute_old_log_prob=true, never with false, and with auto whenever the on-policy shortcut is not exact."""
    mode = recompute_old_log_prob_mode(config)
    if mode == "auto":
        return bool(old_log_prob_shortcut_blockers(config))
    return mode is not False


def _one_of(errors: list[str], section: DictConfig, name: str, global_key: str, per_gpu_key: str) -> None:
    """verl's rule: set exactly one of the legacy global micro-batch key and the *_per_gpu key."""
    g, p = section.get(global_key), section.get(per_gpu_key)
    if g is not None and p is not None:
        errors.append(f"{name}.{global_key}={g} and {name}.{per_gpu_key}={p} are both set: set only "
                      f"{name}.{per_gpu_key} ({global_key} is the legacy global form)")
    elif g is None and p is None:
        errors.append(f"set {name}.{per_gpu_key} (or the legacy global {name}.{global_key}); both are null")


def _micro_per_rank(section: DictConfig, global_key: str, per_gpu_key: str, ws: int) -> int | None:
    if section.get(per_gpu_key) is not None:
        return int(section.get(per_gpu_key))
    if section.get(global_key) is not None:
        return int(section.get(global_key)) // ws
    return None


def _check_mini_micro(errors: list[str], section: DictConfig, name: str, train_bs: int, n: int, ws: int) -> None:
    """Mini-batch divides the batch and the ranks; the micro-batch fits and divides the per-rank mini-batch."""
    mini = int(section.ppo_mini_batch_size)
    if mini <= 0 or train_bs % mini != 0:
        errors.append(f"{name}.ppo_mini_batch_size={mini} must divide data.train_batch_size={train_bs} "
                      f"(both count prompts)")
        return
    if (mini * n) % ws != 0:
        errors.append(f"{name}.ppo_mini_batch_size={mini} x actor_rollout_ref.rollout.n={n} = {mini * n} samples "
                      f"does not split over {ws} ranks (trainer.nnodes x trainer.n_gpus_per_node)")
        return
    if section.use_dynamic_bsz:
        return
    _one_of(errors, section, name, "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu")
    micro = _micro_per_rank(section, "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu", ws)
    if micro is None:
        return
    mini_per_rank = mini * n // ws
    where = (f"{name}.ppo_micro_batch_size_per_gpu={micro}" if section.get("ppo_micro_batch_size_per_gpu") is not None
             else f"{name}.ppo_micro_batch_size={section.ppo_micro_batch_size} (= {micro} per rank over {ws} ranks)")
    if micro <= 0:
        errors.append(f"{where} must be at least 1 per rank")
    elif micro > mini_per_rank:
        errors.append(f"{where} is larger than the mini-batch per rank: {name}.ppo_mini_batch_size={mini} x "
                      f"rollout.n={n} / {ws} ranks = {mini_per_rank} samples")
    elif mini_per_rank % micro != 0:
        errors.append(f"{where} does not divide the mini-batch per rank: {name}.ppo_mini_batch_size={mini} x "
                      f"rollout.n={n} / {ws} ranks = {mini_per_rank} samples")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def filter_groups_errors(config: DictConfig) -> list[str]:
    """``algorithm.filter_groups`` (DAPO's dynamic sampling) and ``data.gen_batch_size``: the values, and the
    combinations that cannot work (one sample per prompt, a round limit that can never fill a batch, ...)."""
    from verl.trainer.ppo.filter_groups import ON_EXHAUSTED

    fg, data, errors = config.algorithm.filter_groups, config.data, []
    train_bs, gen_bs = data.train_batch_size, data.get("gen_batch_size", data.train_batch_size)
    if not isinstance(fg.enable, bool):
        errors.append(f"algorithm.filter_groups.enable={fg.enable!r} must be True or False")
    if not _positive_int(gen_bs):
        errors.append(f"data.gen_batch_size={gen_bs!r} must be a positive number of prompts")
    if fg.enable is not True:
        if _positive_int(gen_bs) and gen_bs != train_bs:
            errors.append(f"data.gen_batch_size={gen_bs} differs from data.train_batch_size={train_bs}: only dynamic "
                          f"sampling (algorithm.filter_groups.enable=True) generates for other than the trained prompts")
        return errors
    n = int(config.actor_rollout_ref.rollout.n)
    if n < 2:
        errors.append(f"algorithm.filter_groups.enable=True compares the samples of each prompt: it needs "
                      f"actor_rollout_ref.rollout.n > 1 (got n={n})")
    if not isinstance(fg.metric, str) or not fg.metric.strip():
        errors.append(f"algorithm.filter_groups.metric={fg.metric!r}: name the metric whose spread keeps a group "
                      f"(seq_reward, seq_final_reward, score, or a numeric key the scorer returns such as acc)")
    elif fg.metric == "seq_final_reward" and config.algorithm.use_kl_in_reward:
        errors.append("algorithm.filter_groups.metric=seq_final_reward with algorithm.use_kl_in_reward=True: the KL "
                      "penalty is added to the reward after the groups are filtered here; filter on seq_reward "
                      "(the scores) or turn off use_kl_in_reward")
    limit = fg.max_num_gen_batches
    if isinstance(limit, bool) or not isinstance(limit, int):
        errors.append(f"algorithm.filter_groups.max_num_gen_batches={limit!r} must be an integer (<= 0: no limit)")
    elif limit > 0 and _positive_int(gen_bs) and _positive_int(train_bs) and limit * gen_bs < train_bs:
        errors.append(f"algorithm.filter_groups.max_num_gen_batches={limit} rounds x data.gen_batch_size={gen_bs} "
                      f"prompts can never fill data.train_batch_size={train_bs} groups")
    _check_choice(errors, "algorithm.filter_groups.on_exhausted", fg.get("on_exhausted", "error"), ON_EXHAUSTED)
    return errors


def _check_choice(errors: list[str], key: str, value, choices) -> None:
    if value not in choices:
        errors.append(f"{key}={value!r} is not one of {', '.join(map(str, choices))}")


def _fsdp_size_errors(errors: list[str], key: str, value, ws: int) -> None:
    """``fsdp_size``: -1 (shard over every rank) or a positive divisor of the world size (HSDP: shard within groups
    of that many ranks, replicate across the groups)."""
    try:
        size = int(value)
    except (TypeError, ValueError):
        errors.append(f"{key}={value!r} is not an integer (use -1 to shard over all {ws} ranks)")
        return
    if size == -1:
        return
    if size <= 0:
        errors.append(f"{key}={size} must be -1 (shard over all ranks) or a positive number of ranks")
    elif ws % size != 0:
        errors.append(f"{key}={size} does not divide the {ws} ranks (trainer.nnodes x trainer.n_gpus_per_node): "
                      f"HSDP shards within groups of fsdp_size ranks and replicates across the groups")


def _external_lib_errors(errors: list[str], key: str, libs) -> None:
    """Each ``external_lib`` entry (a module name, a ``.py`` file, or a list of them) that Python cannot find;
    checked without running the module (the driver and the workers import it before loading a model)."""
    if not libs:
        return
    for name in [libs] if isinstance(libs, str) else list(libs):
        name = str(name)
        if name.endswith(".py") or os.path.sep in name:
            if not os.path.isfile(os.path.expanduser(name)):
                errors.append(f"{key}={name!r}: no such file")
            continue
        try:
            found, detail = importlib.util.find_spec(name) is not None, ""
        except (ImportError, ValueError) as e:  # a missing parent package, or an empty / relative name
            found, detail = False, f": {e}"
        if not found:
            errors.append(f"{key}={name!r}: no importable module of that name{detail} (it is imported before the "
                          f"model is loaded; install it or put it on PYTHONPATH)")


def unimplemented_value_errors(config: DictConfig) -> list[str]:
    """verl keys accepted for compatibility whose non-default values this framework does not implement: each is
    rejected, naming the key, rather than silently ignored. Also checks the values of the keys that are
    implemented but easy to get wrong (fsdp_size, external_lib)."""
    errors: list[str] = []
    arr, ws = config.actor_rollout_ref, world_size(config)
    if arr.hybrid_engine is not True:
        errors.append(f"actor_rollout_ref.hybrid_engine={arr.hybrid_engine!r}: separate rollout workers are not "
                      f"built here; the actor and the rollout always share one worker (use True)")
    if arr.rollout.mode != "sync":
        errors.append(f"actor_rollout_ref.rollout.mode={arr.rollout.mode!r}: only sync rollout is implemented "
                      f"(async / agent-loop rollout servers are not); use sync")
    workers = config.data.dataloader_num_workers
    if isinstance(workers, bool) or workers != 0:
        errors.append(f"data.dataloader_num_workers={workers!r}: batches are gathered in the driver from prompts "
                      f"tokenized once at start-up, so worker processes have nothing to do; use 0")
    fsdp_sections = [("actor_rollout_ref.actor.fsdp_config", arr.actor.fsdp_config),
                     ("actor_rollout_ref.ref.fsdp_config", arr.ref.fsdp_config),
                     ("critic.model.fsdp_config", config.critic.model.fsdp_config)]
    for name, fsdp in fsdp_sections:
        min_params = (fsdp.get("wrap_policy") or {}).get("min_num_params", 0)
        if min_params != 0:
            errors.append(f"{name}.wrap_policy.min_num_params={min_params!r}: size-based wrapping is not "
                          f"implemented; FSDP2 always wraps each decoder layer (the model's _no_split_modules), "
                          f"which is verl's min_num_params=0 policy (use 0)")
        if "fsdp_size" in fsdp:
            _fsdp_size_errors(errors, f"{name}.fsdp_size", fsdp.fsdp_size, ws)
    _external_lib_errors(errors, "actor_rollout_ref.model.external_lib", arr.model.external_lib)
    if need_critic(config) and config.critic.model.external_lib != arr.model.external_lib:
        _external_lib_errors(errors, "critic.model.external_lib", config.critic.model.external_lib)
    return errors


def lora_errors(config: DictConfig) -> list[str]:
    """Bad LoRA keys of ``actor_rollout_ref.model`` (rank, alpha, types), then target / exclude module names that
    match no module of the model, found on an empty (meta-device) copy built from its config. A model that is not a
    local folder (a hub id: no download from the driver) or whose config cannot be read here is checked by the
    workers when they load it."""
    from verl.workers.sharding.lora import lora_config_errors, lora_rank, lora_target_errors, model_on_meta

    model = config.actor_rollout_ref.model
    errors = lora_config_errors(model)
    if errors or lora_rank(model) == 0 or not os.path.isdir(os.path.expanduser(str(model.path))):
        return errors
    try:
        meta_model = model_on_meta(model)
    except (OSError, ValueError) as e:
        logger.info("LoRA target_modules not checked before start (%s: %s); the workers check them", type(e).__name__, e)
        return []
    return lora_target_errors(meta_model, model)


def config_errors(config: DictConfig) -> list[str]:
    """Every problem with a PPO config whose key names are known and legacy keys normalised.

    Returns messages naming keys and values (empty when the config can run).
    """
    import torch

    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, LOSS_AGG_MODES, POLICY_LOSS_REGISTRY
    from verl.trainer.ppo.generation_logs import generation_log_errors
    from verl.workers.reward_manager import list_reward_managers
    from verl.workers.reward_manager.overlong import OverlongBuffer

    errors: list[str] = []
    data, arr, alg, t = config.data, config.actor_rollout_ref, config.algorithm, config.trainer
    actor, rollout = arr.actor, arr.rollout
    ws = world_size(config)

    _check_choice(errors, "trainer.backend", t.backend, ("ray", "local"))
    if t.backend == "local" and ws != 1:
        errors.append(f"trainer.backend=local runs one in-process worker: needs trainer.nnodes=1 and "
                      f"trainer.n_gpus_per_node=1 (got {t.nnodes} x {t.n_gpus_per_node})")
    _check_choice(errors, "trainer.device", t.device, ("auto", "cpu", "cuda"))
    if t.backend == "local" and t.device == "cuda" and not torch.cuda.is_available():
        errors.append("trainer.device=cuda with trainer.backend=local (the worker runs in this process) but torch "
                      "sees no CUDA device here (use trainer.device=cpu or auto)")
    _check_choice(errors, "algorithm.adv_estimator", alg.adv_estimator, sorted(ADV_ESTIMATOR_REGISTRY))
    n = int(rollout.n)
    if n < 1:
        errors.append(f"actor_rollout_ref.rollout.n={n} must be >= 1")
    elif n == 1 and alg.adv_estimator in GROUP_ESTIMATORS:
        errors.append(f"algorithm.adv_estimator={alg.adv_estimator} compares samples of the same prompt: it needs "
                      f"actor_rollout_ref.rollout.n > 1 (got n=1)")
    _check_choice(errors, "actor_rollout_ref.rollout.name", rollout.name, ("hf", "vllm"))
    for key, section in (("actor_rollout_ref.actor.strategy", actor), ("critic.strategy", config.critic)):
        _check_choice(errors, key, section.strategy, ("fsdp2",))
    _check_choice(errors, "actor_rollout_ref.actor.loss_agg_mode", actor.loss_agg_mode, LOSS_AGG_MODES)
    _check_choice(errors, "actor_rollout_ref.actor.policy_loss.loss_mode", actor.policy_loss.loss_mode,
                  sorted(POLICY_LOSS_REGISTRY))
    for key, value in (("actor_rollout_ref.actor.loss_scale_factor", actor.loss_scale_factor),
                       ("critic.loss_scale_factor", config.critic.loss_scale_factor)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            errors.append(f"{key}={value!r} must be a positive number (seq-mean-token-sum-norm's divisor), or null "
                          f"(the response length)")
    _check_choice(errors, "actor_rollout_ref.actor.kl_loss_type", actor.kl_loss_type, KL_ESTIMATORS)
    _check_choice(errors, "algorithm.kl_penalty", alg.kl_penalty, KL_ESTIMATORS)
    _check_choice(errors, "algorithm.kl_ctrl.type", alg.kl_ctrl.type, ("fixed", "adaptive"))
    _check_choice(errors, "data.truncation", data.truncation, TRUNCATIONS)
    for key in ("max_prompt_length", "max_response_length", "train_batch_size"):
        if int(data[key]) <= 0:
            errors.append(f"data.{key}={data[key]} must be positive")
    if data.val_batch_size is not None and (isinstance(data.val_batch_size, bool)
                                            or not isinstance(data.val_batch_size, int) or data.val_batch_size <= 0):
        errors.append(f"data.val_batch_size={data.val_batch_size!r} must be a positive number of prompts, or null "
                      f"(the whole val set in one generate call)")
    for key, section in (("actor_rollout_ref.actor.checkpoint", actor.checkpoint),
                         ("critic.checkpoint", config.critic.checkpoint)):
        errors.extend(checkpoint_contents_errors(section, key))
    for key, value in (("actor_rollout_ref.actor.ulysses_sequence_parallel_size", actor.ulysses_sequence_parallel_size),
                       ("critic.ulysses_sequence_parallel_size", config.critic.ulysses_sequence_parallel_size)):
        if value != 1:
            errors.append(f"{key}={value}: sequence parallelism is not supported here (use 1)")
    if int(actor.ppo_epochs) < 1:
        errors.append(f"actor_rollout_ref.actor.ppo_epochs={actor.ppo_epochs} must be >= 1")
    recompute = recompute_old_log_prob_mode(config)
    if recompute is None:
        errors.append(f"actor_rollout_ref.actor.recompute_old_log_prob={actor.recompute_old_log_prob!r} is not one "
                      f"of auto, true, false")
    elif recompute is False and old_log_prob_shortcut_blockers(config):
        errors.append("actor_rollout_ref.actor.recompute_old_log_prob=false needs exactly one optimizer step per "
                      "batch and no KL in the reward; here: " + "; ".join(old_log_prob_shortcut_blockers(config)))

    train_bs = int(data.train_batch_size)
    if train_bs > 0 and n >= 1:
        _check_mini_micro(errors, actor, "actor_rollout_ref.actor", train_bs, n, ws)
        if need_critic(config):
            _check_mini_micro(errors, config.critic, "critic", train_bs, n, ws)
        if not rollout.log_prob_use_dynamic_bsz and recompute is not None and need_old_log_prob_pass(config):
            _one_of(errors, rollout, "actor_rollout_ref.rollout", "log_prob_micro_batch_size",
                    "log_prob_micro_batch_size_per_gpu")
        if need_reference_policy(config) and not arr.ref.log_prob_use_dynamic_bsz:
            _one_of(errors, arr.ref, "actor_rollout_ref.ref", "log_prob_micro_batch_size",
                    "log_prob_micro_batch_size_per_gpu")
    errors.extend(filter_groups_errors(config))
    errors.extend(lora_errors(config))
    errors.extend(generation_log_errors(config))

    if config.reward_model.enable:
        errors.append("reward_model.enable=True: a model-based reward is not supported here; "
                      "use custom_reward_function.path or reward_model.data_source_scorers")
    _check_choice(errors, "reward_model.reward_manager", config.reward_model.reward_manager, list_reward_managers())
    if not isinstance(config.reward_model.get("launch_reward_fn_async"), (bool, type(None))):
        errors.append(f"reward_model.launch_reward_fn_async={config.reward_model.launch_reward_fn_async!r}: "
                      f"expected True, False or null (on under the Ray backend)")
    try:  # the reward managers build it from the same keys; here every problem is reported before any worker starts
        OverlongBuffer.from_config(config.reward_model.overlong_buffer, data.max_response_length)
    except (TypeError, ValueError) as e:
        errors.append(str(e))
    errors.extend(unimplemented_value_errors(config))
    path = config.custom_reward_function.path
    if path and str(path).endswith(".py") and not os.path.isfile(os.path.expanduser(str(path))):
        errors.append(f"custom_reward_function.path={path!r}: no such file")

    loggers = [t.logger] if isinstance(t.logger, str) else list(t.logger or [])
    for name in loggers:
        _check_choice(errors, "trainer.logger", name, LOGGERS)
    if t.default_hdfs_dir is not None:
        errors.append(f"trainer.default_hdfs_dir={t.default_hdfs_dir!r}: HDFS is not supported (leave it null)")
    if t.resume_mode not in ("auto", "disable") and not os.path.isdir(os.path.expanduser(str(t.resume_mode))):
        errors.append(f"trainer.resume_mode={t.resume_mode!r} is neither auto, disable nor an existing "
                      f"global_step_N folder")
    if int(t.critic_warmup) < 0:
        errors.append(f"trainer.critic_warmup={t.critic_warmup} must be >= 0")
    if t.total_training_steps is not None and int(t.total_training_steps) <= 0:
        errors.append(f"trainer.total_training_steps={t.total_training_steps} must be positive (or null)")
    return errors


def set_device_keys(config: DictConfig, device: str) -> None:
    """Write the workers' device (trainer.device, actor_rollout_ref.device, critic.device), in place."""
    with open_dict(config):
        config.trainer.device = device
        config.actor_rollout_ref.device = device
        config.critic.device = device


def resolve_derived_keys(config: DictConfig) -> None:
    """Fill the keys the trainer owns (device when it is explicit, clip ratios) before the config reaches the
    workers. ``trainer.device=auto`` stays auto here: the trainer decides it from the cluster the workers run on
    (``RayPPOTrainer.init_workers``), not from this process, which may be a CPU-only Ray head node."""
    if config.trainer.device != "auto":
        set_device_keys(config, config.trainer.device)
    actor = config.actor_rollout_ref.actor
    with open_dict(config):
        if actor.clip_ratio_low is None:
            actor.clip_ratio_low = actor.clip_ratio
        if actor.clip_ratio_high is None:
            actor.clip_ratio_high = actor.clip_ratio


def validate_config(config: DictConfig) -> DictConfig:
    """Normalise legacy keys, check everything, fill derived keys; raise ConfigError listing all problems.

    Mutates and returns ``config``. Call before starting any worker.
    """
    errors = unknown_key_errors(config, load_schema())
    if not errors:  # the value checks would trip over misspelled neighbours: fix names first
        apply_legacy_keys(config)
        errors = config_errors(config)
    if errors:
        raise ConfigError(f"Invalid PPO config ({len(errors)} problem{'s' if len(errors) > 1 else ''}):\n  - "
                          + "\n  - ".join(errors))
    resolve_derived_keys(config)
    warn_odd_choices(config)
    return config


def warn_odd_choices(config: DictConfig) -> None:
    """Log choices that run but are probably not what the user meant."""
    alg, actor = config.algorithm, config.actor_rollout_ref.actor
    if alg.use_kl_in_reward and actor.use_kl_loss:
        logger.warning("algorithm.use_kl_in_reward=True and actor_rollout_ref.actor.use_kl_loss=True: "
                       "the KL is penalised twice.")
    overlong = config.reward_model.overlong_buffer
    if overlong.enable and float(overlong.penalty_factor) == 0:
        logger.warning("reward_model.overlong_buffer.enable=True with penalty_factor=0: no penalty is applied "
                       "(DAPO's scripts use 1.0).")
    val = config.actor_rollout_ref.rollout.val_kwargs
    if int(val.n) > 1 and not val.do_sample:
        logger.warning("actor_rollout_ref.rollout.val_kwargs.n=%s with do_sample=False: the samples are identical.",
                       val.n)
