"""The real ``bananas`` CLI in subprocesses: worker, submit, queues, job, configuration
errors and ``--processes``."""

from __future__ import annotations

import os
import signal

import pytest
import redis
from support import CliRunner, job_record, ran, status_of, strings, wait_until

from bananas import Client


def queue_table(stdout: str) -> dict[str, list[int]]:
    """``bananas queues`` rows: routing key -> [high, normal, low, total] (the problems,
    if any, come before the table)."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("ROUTING KEY"))
    assert lines[header].split()[:6] == ["ROUTING", "KEY", "HIGH", "NORMAL", "LOW", "TOTAL"], stdout
    rows = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        key, *counts = line.split()
        rows[key] = [int(c) for c in counts[:4]]
    return rows


def test_worker_submit_and_queues(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    result = cli.run(
        "submit", "process_image", "--payload", '{"w":2,"h":3}', "--priority", "high", "--routing-key", "gpu"
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.strip()
    record = job_record(r, first)
    assert record is not None and record["payload"] == {"w": 2, "h": 3}
    assert strings(r.lrange("bananas:route:gpu:queue:high", 0, -1)) == [first]
    result = cli.run("submit", "send_email", "--payload", '{"to":"a@b.c"}', "--routing-key", "email")
    assert result.returncode == 0, result.stderr
    email = result.stdout.strip()
    assert strings(r.lrange("bananas:route:email:queue:normal", 0, -1)) == [email]
    submitted = [
        first,
        client.submit_job("process_image", {"w": 1, "h": 1}, "high", routing_key="gpu"),
        client.submit_job("process_image", {"w": 4, "h": 5}, "low", routing_key="gpu"),
        client.submit_job("noop", None),
    ]

    table = cli.run("queues")
    assert table.returncode == 0, table.stderr
    assert queue_table(table.stdout) == {"default": [0, 1, 0, 1], "email": [0, 1, 0, 1], "gpu": [2, 0, 1, 3]}
    assert "scheduled: 0" in table.stdout and "dead: 0" in table.stdout

    # `bananas worker apps.basic:registry`, routing keys from the environment
    worker = cli.worker(pool="gpu-pool", env={"WORKER_ROUTING_KEYS": "gpu,default", "WORKER_CONCURRENCY": "1"})
    wait_until(lambda: all(status_of(r, j) == "completed" for j in submitted), 20, what="gpu and default jobs")
    # gpu is preferred over default, and high over low; each ran on the gpu-pool with its routing key.
    assert ran(r) == [
        [submitted[0], "process_image", "gpu", "high", "gpu-pool"],
        [submitted[1], "process_image", "gpu", "high", "gpu-pool"],
        [submitted[2], "process_image", "gpu", "low", "gpu-pool"],
        [submitted[3], "noop", "default", "normal", "gpu-pool"],
    ]
    assert status_of(r, email) == "pending"  # no worker listens on email

    after = cli.run("queues")
    assert queue_table(after.stdout) == {"default": [0, 0, 0, 0], "email": [0, 1, 0, 1], "gpu": [0, 0, 0, 0]}
    assert worker.poll() is None


def test_worker_flags(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    worker = cli.worker("--routing-keys", "email", "--priorities", "high,low", "--concurrency", "1", pool="P")
    cli.wait_ready(worker)
    normal = client.submit_job("noop", None, "normal", routing_key="email")
    low = client.submit_job("noop", None, "low", routing_key="email")
    high = client.submit_job("noop", None, "high", routing_key="email")
    other = client.submit_job("noop", None, "high", routing_key="gpu")
    wait_until(lambda: status_of(r, low) == status_of(r, high) == "completed", what="high and low jobs to run")
    assert status_of(r, normal) == "pending" and status_of(r, other) == "pending"
    info = {k.decode(): v.decode() for k, v in r.hgetall(f"bananas:worker:{cli.worker_ids(worker.pid)[0]}").items()}
    assert info["routing_keys"] == "email"


def test_submit_bad_input_one_line_error_nothing_written(cli: CliRunner, r: redis.Redis) -> None:
    cases = [
        (("--routing-key", "a b"), "routing key"),
        (("--priority", "urgent"), "priority"),
        (("--payload", "{not json"), "--payload"),
    ]
    for args, words in cases:
        result = cli.run("submit", "noop", *args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert words in lines[0] and "Traceback" not in result.stderr
    assert r.dbsize() == 0


def test_submit_with_delay_is_scheduled(cli: CliRunner, r: redis.Redis) -> None:
    result = cli.run("submit", "noop", "--delay", "60", "--routing-key", "gpu", "--priority", "low")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert r.zscore("bananas:queue:scheduled", job_id) is not None
    record = job_record(r, job_id)
    assert record is not None and record["status"] == "scheduled" and record["routing_key"] == "gpu"


@pytest.mark.parametrize(
    ("env", "args", "name"),
    [
        ({"WORKER_CONCURRENCY": "0"}, (), "WORKER_CONCURRENCY"),
        ({"WORKER_PRIORITIES": "urgent"}, (), "WORKER_PRIORITIES"),
        ({"WORKER_ROUTING_KEYS": "a b"}, (), "WORKER_ROUTING_KEYS"),
        ({"JOB_LEASE_SECONDS": "soon"}, (), "JOB_LEASE_SECONDS"),
        ({"WORKER_CONCURRENCY": "4"}, ("--concurrency", "0"), "--concurrency"),
    ],
)
def test_bad_configuration_stops_worker_with_one_line(
    cli: CliRunner, r: redis.Redis, env: dict[str, str], args: tuple[str, ...], name: str
) -> None:
    result = cli.run("worker", "apps.basic:registry", *args, env=env, timeout=20)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr
    assert r.dbsize() == 0  # it never started


@pytest.mark.parametrize(
    ("app", "words"),
    [
        ("apps.nope:registry", "cannot import"),
        ("apps.basic:record", "apps.basic:record"),
    ],
)
def test_bad_app_one_line_error(cli: CliRunner, app: str, words: str) -> None:
    result = cli.run("worker", app, timeout=20)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_processes_runs_two_workers_and_sigterm_exits_0(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    supervisor = cli.worker("--processes", "2", "--concurrency", "1", "--routing-keys", "gpu", pool="multi")
    wait_until(lambda: len(cli.worker_ids()) == 2, 20, what="two worker processes to start")
    pids = {int(strings([r.hget(f"bananas:worker:{w}", "pid")])[0]) for w in cli.worker_ids()}
    assert len(pids) == 2 and supervisor.pid not in pids

    # Each process runs one job at a time, and each job waits for the other: both complete
    # only if the two processes run them side by side.
    ids = [client.submit_job("rendezvous", {"parties": 2}, routing_key="gpu", max_retries=0) for _ in range(2)]
    wait_until(lambda: all(status_of(r, j) in ("completed", "failed") for j in ids), 15, what="the jobs to run")
    assert [status_of(r, j) for j in ids] == ["completed", "completed"]
    ran_by = {int(entry.split("|")[1]) for entry in strings(r.lrange("test:pids", 0, -1))}
    assert ran_by == pids, "both worker processes ran jobs"

    supervisor.send_signal(signal.SIGTERM)
    assert cli.wait_exit(supervisor, 30) == 0, cli.output(supervisor)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert cli.worker_ids() == []
    assert "Traceback" not in cli.output(supervisor)
