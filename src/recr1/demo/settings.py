"""What the demo runs: one flat set of knobs, a full profile (the < 15 minute CPU demo) and a fast smoke profile,
for each task: ``search`` (product search on the synthetic Amazon-C4-format catalog, the default) and ``seqrec``
(sequential recommendation on the synthetic Amazon-Reviews-2023-format category).

Every knob can be changed from the command line with ``--set name=value`` (e.g. ``--set rl_steps=100``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields


@dataclass
class DemoSettings:
    """All demo knobs. ``seed`` drives model init, SFT and RL; ``data_seed`` the synthetic catalog and splits."""

    seed: int = 1
    data_seed: int = 0
    task: str = "search"           # search | seqrec (see TASKS)
    # synthetic catalog -> prepared parquet
    items: int = 20000
    requests: int = 3000
    val_size: int = 200
    prompt_template: str = "keywords"  # see recr1/demo/templates.py; or "compact", "sparse"
    # seqrec only: synthetic users (each buys 4-10 items) and the titles a prompt shows
    users: int = 0
    max_history: int = 6
    sft_word_keep: float = 1.0     # seqrec: each word of the SFT answer is kept with this probability (random, target-
    #                                free), so the warm start samples shorter queries and GRPO has something to choose from
    # tiny policy
    vocab_words: int = 1000        # words kept whole by the tokenizer (the catalog has ~930 distinct words)
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    # SFT warm start on naive answers
    naive_words: int = 12
    sft_swapped_copies: int = 4    # word-swapped copies of each training request (recr1/demo/augment.py)
    sft_steps: int = 900
    sft_batch: int = 32
    sft_lr: float = 3e-3
    sft_warmup: float = 0.05
    # GRPO
    rl_steps: int = 600
    rl_prompts: int = 8            # prompts per step
    rl_n: int = 8                  # samples per prompt
    rl_lr: float = 3e-4
    rl_temperature: float = 1.0
    rl_filter_groups: bool = True   # DAPO dynamic sampling: drop requests whose samples all scored the same and
    #                                 generate more (up to 4 rounds a step), so every update has a reward spread
    response_length: int = 32
    prompt_length: int = 320
    rl_val_rows: int = 200         # amazon_c4_val rows scored greedily during training (the val curve)
    test_freq: int = 50
    dedup_terms: bool = False      # True: a repeated query word counts once in BM25. Rec-R1 let repeats count,
    #                                and the policy learns to repeat the product type (term frequency)
    # evaluation on the held-out test split (the categories never seen in training)
    eval_rows: int = 0             # 0: every test row
    threads: int = 1               # torch threads per process (0: torch's default, one per core)
    extra_rl_overrides: list[str] = field(default_factory=list)

    def fingerprint(self, names: list[str]) -> dict:
        """The values of ``names``: what a step's output depends on."""
        return {name: getattr(self, name) for name in names}


FULL = DemoSettings()

FAST = dataclasses.replace(
    FULL, items=3000, requests=600, val_size=60, sft_steps=150, rl_steps=20, rl_val_rows=40, test_freq=10,
    eval_rows=200,
)

# Sequential recommendation: 1,500 users over 3,000 background products (~10,900 items in all); a shorter run so
# that three seeds take well under an hour on 2 cores. The SFT target is the last title (the baseline itself) with
# each word kept with probability 0.8. Copied exactly (500 steps to loss 0.000) the policy's entropy fell to ~0.01
# and GRPO, with nothing to choose from, stayed at the baseline (val NDCG@100 0.200 -> 0.198 in 67 steps); with
# words dropped, 250 SFT steps did not yet teach copying (val NDCG@100 0.04), 400 did (0.20) and 120 GRPO steps
# from there moved test NDCG@100 only from 0.190 to 0.209.
SEQREC_FULL = dataclasses.replace(
    FULL, task="seqrec", items=3000, users=1500, requests=0, val_size=0, sft_swapped_copies=0, sft_steps=600,
    sft_word_keep=0.8, rl_steps=300, test_freq=50, rl_val_rows=100, eval_rows=600,
)
SEQREC_FAST = dataclasses.replace(
    SEQREC_FULL, items=600, users=300, sft_steps=100, rl_steps=10, rl_val_rows=40, test_freq=5, eval_rows=100,
)

PROFILES = {"full": FULL, "fast": FAST}
TASKS = {"search": {"full": FULL, "fast": FAST}, "seqrec": {"full": SEQREC_FULL, "fast": SEQREC_FAST}}


def _parse_value(current, text: str):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(current, list):
        return [t for t in text.split(",") if t]
    return type(current)(text)


def apply_overrides(settings: DemoSettings, assignments: list[str]) -> DemoSettings:
    """``["rl_steps=100", "rl_lr=1e-4"]`` -> a copy of ``settings`` with those values (types kept).

    Raises ValueError naming the bad assignment (unknown name, missing '=', value of the wrong type).
    """
    known = {f.name: f for f in fields(settings)}
    changes = {}
    for item in assignments:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected name=value")
        name, text = item.split("=", 1)
        name = name.strip()
        if name not in known:
            raise ValueError(f"--set {item!r}: unknown setting {name!r}; known: {', '.join(sorted(known))}")
        try:
            changes[name] = _parse_value(getattr(settings, name), text.strip())
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {e}") from None
    return dataclasses.replace(settings, **changes)
