"""Command line: ``python -m recr1.report RUN_DIR [--out DIR]``."""
from __future__ import annotations

import argparse
import sys

from recr1.report import build_report


def main(argv=None) -> int:
    """Write the report and print where it went; a missing or malformed metrics file exits 2 with its message."""
    parser = argparse.ArgumentParser(prog="python -m recr1.report", description=(
        "Plots (reward, validation NDCG per data source, response length, entropy, KL, time per phase) and a "
        "markdown summary of a training run, from its metrics.jsonl; offline."))
    parser.add_argument("run", help="run folder (trainer.default_local_dir), a folder above it, or metrics.jsonl")
    parser.add_argument("--out", default=None, help="output folder (default: report/ beside metrics.jsonl)")
    args = parser.parse_args(argv)
    try:
        result = build_report(args.run, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"recr1.report: {err}", file=sys.stderr)
        return 2
    print(f"[report] {result['metrics_file']} -> {result['out_dir']}: {', '.join(result['figures'])}")
    for name, note in result["skipped"]:
        print(f"[report] skipped {name}: {note}")
    print(f"[report] summary: {result['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
