"""Our trainer's real entry point (``verl.trainer.main_ppo.main``) plus a per-step CPU-time record.

    python scripts/bench/run_ours.py STEPS_JSONL key=value ...   # same overrides as python -m verl.trainer.main_ppo

Wall-clock step times and phases come from ``<default_local_dir>/metrics.jsonl`` (timing_s/*) as usual. On a
shared machine wall time mostly measures the neighbours, so this wrapper also writes, per step, the CPU seconds
the process spent inside ``RayPPOTrainer.train_step`` (``time.process_time``, all threads; the in-process backend
runs the worker in this same process). The wrapper only measures: the method it wraps is called unchanged.
"""
from __future__ import annotations

import json
import sys
import time


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: run_ours.py STEPS_JSONL key=value ...")
    steps_path, overrides = sys.argv[1], sys.argv[2:]
    from verl.trainer import main_ppo
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    original = RayPPOTrainer.train_step
    out = open(steps_path, "w")

    def measured_train_step(self, batch, timing_raw):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = original(self, batch, timing_raw)
        out.write(json.dumps({"step": self.global_steps, "cpu_s": time.process_time() - cpu0,
                              "wall_s": time.perf_counter() - wall0}) + "\n")
        out.flush()
        return result

    RayPPOTrainer.train_step = measured_train_step
    sys.argv = [main_ppo.__file__, *overrides]
    try:
        main_ppo.main()
    finally:
        out.close()


if __name__ == "__main__":
    main()
