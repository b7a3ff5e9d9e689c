"""examples/task_routing runs as its README says: two workers and the client, against
the session's server, and every job runs only on a worker that listens on its key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "task_routing"


def start(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, script],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_example_routes_each_job_to_a_listening_worker(redis_url: str, r: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_", "EXAMPLE_"))}
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    workers = {"gpu-worker": start("gpu_worker.py", env), "multi-worker": start("multi_worker.py", env)}
    output: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 20
        while r.zcard("bananas:workers") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.zcard("bananas:workers") == 2, "the two example workers did not start"

        client = subprocess.run(
            [sys.executable, "client.py"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60
        )
        assert client.returncode == 0, client.stdout + client.stderr
        assert "7 of 7 jobs completed" in client.stdout
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in workers.items():
            try:
                output[name], _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output[name], _ = proc.communicate()
    for name, proc in workers.items():
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{output[name]}"

    def runs(name: str) -> list[str]:
        return [line for line in output[name].splitlines() if line.startswith(f"[{name}]")]

    assert all("routing_key=gpu " in line for line in runs("gpu-worker")), output["gpu-worker"]
    everything = runs("gpu-worker") + runs("multi-worker")
    assert len(everything) == 7, output
    multi = "\n".join(runs("multi-worker"))
    assert multi.count(" send_email ") == 3 and multi.count(" generate_report ") == 1, multi
