"""``bananas result JOB_ID [--wait SECONDS]`` in a subprocess, against a CLI worker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from results_support import wait_until

from bananas import Client


def bananas(*args: str) -> list[str]:
    return [sys.executable, "-m", "bananas", *args]


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(bananas(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def cli_worker(results_env: dict[str, str], r: redis.Redis) -> Iterator[subprocess.Popen[str]]:
    """``bananas worker results_app:registry`` with RESULT_TTL=1000, RESULT_FAILURE_TTL=5000."""
    env = {**results_env, "RESULT_TTL": "1000", "RESULT_FAILURE_TTL": "5000", "WORKER_ROUTING_KEYS": "default"}
    proc = subprocess.Popen(
        bananas("worker", "results_app:registry"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(lambda: r.zcard("bananas:workers") >= 1 or proc.poll() is not None, timeout=30, what="the worker")
        assert proc.poll() is None, proc.communicate()[0]
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert proc.returncode == 0, output


def test_result_command(
    redis_url: str, r: redis.Redis, results_env: dict[str, str], cli_worker: subprocess.Popen[str]
) -> None:
    with Client(redis_url) as client:
        done = client.submit_and_wait("add", {"a": 20, "b": 22}, timeout=30)
        failed = client.submit_job("explode", "cli", max_retries=0)
        slow = client.submit_job("slow", {"seconds": 1.0, "value": ["later", 1]})
        # Nobody listens on 'nowhere': this one stays pending.
        pending = client.submit_job("add", {"a": 1, "b": 1}, routing_key="nowhere")
        procs = {
            "done": start(results_env, "result", done["id"]),
            "slow": start(results_env, "result", slow, "--wait", "30"),
            "failed": start(results_env, "result", failed, "--wait", "30"),
            "pending": start(results_env, "result", pending),
            "pending_wait": start(results_env, "result", pending, "--wait", "0.3"),
            "unknown_wait": start(results_env, "result", "no-such-job", "--wait", "0.2"),
        }
        outcome = {name: finish(proc) for name, proc in procs.items()}

    code, out, err = outcome["done"]
    assert (code, err) == (0, ""), err
    assert json.loads(out) == {"sum": 42, "id": done["id"]}

    code, out, err = outcome["slow"]
    assert (code, err) == (0, ""), err
    assert json.loads(out) == {"value": ["later", 1], "slept": 1.0}

    code, out, err = outcome["failed"]
    assert code == 1 and out == ""
    assert err.startswith(f"job {failed} failed: ValueError: exploded on purpose: cli"), err

    code, out, err = outcome["pending"]
    assert code == 1 and out == ""
    assert err.strip() == f"bananas: error: job {pending} has no result (status: pending)"

    code, out, err = outcome["pending_wait"]
    assert code == 1 and out == ""
    assert err.strip() == f"bananas: error: job {pending} has no result after waiting 0.3s (status: pending)"

    code, out, err = outcome["unknown_wait"]
    assert code == 1 and out == ""
    assert err.strip() == (
        "bananas: error: job no-such-job has no result after waiting 0.2s (no such job, or its record expired)"
    )

    # The worker took its result lifetimes from RESULT_TTL and RESULT_FAILURE_TTL.
    assert 500 < r.ttl(f"bananas:result:{done['id']}") <= 1000
    assert 4500 < r.ttl(f"bananas:result:{failed}") <= 5000
