"""examples/results runs as its README says: a worker, then both clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis
from results_support import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "results"


def test_results_example(redis_url: str, r: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_", "RESULT_"))}
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    worker = subprocess.Popen(
        [sys.executable, "-m", "bananas", "worker", "tasks:registry"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: r.zcard("bananas:workers") >= 1 or worker.poll() is not None, timeout=30, what="worker")
        assert worker.poll() is None, worker.communicate()[0]
        clients = {
            script: subprocess.Popen(
                [sys.executable, script],
                cwd=EXAMPLE,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for script in ("client_sync.py", "client_async.py")
        }
        for script, proc in clients.items():
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{out}\n{err}"
            assert "all steps OK" in out, out
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            log, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            log, _ = worker.communicate()
    assert worker.returncode == 0, log
