"""benchmarks/dashboard.py still runs (its --smoke mode: 20 routing keys, 1,000 jobs).
No speed is asserted: only that every endpoint answered and the table was printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dashboard_benchmark_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_", "REDIS_URL"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-m", "benchmarks.dashboard", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "20 routing keys, 1,000 queued jobs" in done.stdout
    assert done.stdout.count("| overview") == 3 and "| queues" in done.stdout
