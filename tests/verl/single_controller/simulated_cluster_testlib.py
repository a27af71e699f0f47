"""Run a scenario of simulated_cluster.py in a fresh process (its own Ray instance) and return its result."""
import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "simulated_cluster.py")


def run_scenario(name: str, work_dir, timeout_s: float = 300) -> dict:
    """The scenario's RESULT json; AssertionError with the process output when it fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.run([sys.executable, SCRIPT, name, str(work_dir)], capture_output=True, text=True,
                          timeout=timeout_s, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"scenario {name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n" \
                                           f"{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])
