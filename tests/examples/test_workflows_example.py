"""examples/workflows runs as its README says: two pools and the client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflows"


def test_workflows_example(redis_url: str, r: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_", "EXAMPLE_"))}
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    pools = [
        subprocess.Popen(
            [sys.executable, "-m", "bananas", "worker", "tasks:registry"],
            cwd=EXAMPLE,
            env={**env, "WORKER_ROUTING_KEYS": keys},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for keys in ("gpu", "email,default")
    ]
    try:
        deadline = time.monotonic() + 20
        while r.zcard("bananas:workers") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        client = subprocess.run(
            [sys.executable, "client.py"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        for proc in pools:
            proc.send_signal(signal.SIGTERM)
        for proc in pools:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert client.returncode == 0, client.stdout + client.stderr
    out = client.stdout
    assert "chain: mailed cat.png at 640px to ana@example.org" in out
    assert "chord: album of 4: thumb-0.png, thumb-1.png, thumb-2.png, thumb-3.png" in out
    assert "100% pass 4 of 4" in out
    assert "resize      on gpu      completed" in out and "send_email  on email    completed" in out
    assert "make_album  on default  completed" in out
