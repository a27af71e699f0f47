"""``python -m recr1.demo [--task search|seqrec] [--fast] [--seed N] [--out outputs/demo]``: the end-to-end CPU demo.

Synthetic catalog -> prepared parquet -> Lucene index -> tiny Qwen2 policy -> SFT warm start on naive
answers -> GRPO with the BM25 reward -> evaluation on held-out categories -> results.json, results.md,
curves.png. A second run skips every stage whose output is already there.

``--task seqrec`` runs Rec-R1's second task instead: synthetic Amazon Reviews 2023 users -> next-item histories ->
Lucene index of the items -> the same policy, SFT (on the last title) and GRPO -> test NDCG against the
last-title baseline, for users seen in training and held-out ones (default output outputs/demo-seqrec).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys

from recr1.demo.settings import TASKS, apply_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="search", choices=sorted(TASKS),
                        help="search: product search (Amazon-C4 format, the default); seqrec: sequential "
                             "recommendation (Amazon Reviews 2023 format)")
    parser.add_argument("--fast", action="store_true", help="a small smoke run (a few minutes; shows no learning)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the policy, SFT and RL (default 1)")
    parser.add_argument("--out", default=None, help="output folder (default outputs/demo, or outputs/demo-fast)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                        help="change one setting (see recr1/demo/settings.py), e.g. --set rl_steps=100")
    parser.add_argument("--rl-override", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra hydra override for the GRPO trainer, e.g. actor_rollout_ref.actor.use_kl_loss=True")
    parser.add_argument("--verbose", action="store_true", help="show every stage's full output")
    args = parser.parse_args(argv)

    settings = TASKS[args.task]["fast" if args.fast else "full"]
    try:
        settings = apply_overrides(settings, args.assignments)
    except ValueError as e:
        parser.error(str(e))
    if args.seed is not None:
        settings = dataclasses.replace(settings, seed=args.seed)
    if args.rl_override:
        settings = dataclasses.replace(settings, extra_rl_overrides=list(args.rl_override))
    name = "demo" if args.task == "search" else f"demo-{args.task}"
    out = args.out or os.path.join("outputs", f"{name}-fast" if args.fast else name)

    from recr1.demo.pipeline import run_pipeline

    # a SIGTERM (job scheduler, `kill`) unwinds like Ctrl-C so that the running stage's child is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    run_pipeline(settings, out, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
